"""Delivery as a service: the daemon that watches the class, its replicas, health and notifications."""
