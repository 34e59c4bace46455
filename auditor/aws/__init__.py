"""Access to AWS and its emulator: sessions and clients, the function's run, CloudTrail and EventBridge."""
