"""The lab's domain, pure: the configuration and spec as data, what was found, the findings and faults."""
