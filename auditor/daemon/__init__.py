"""Delivery as a service: the daemon's service that watches the class, the drivers that tell it when
(APScheduler alone, procrastinate across replicas), the supervisor that starts and stops them, and
notifications."""
