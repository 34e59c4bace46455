"""The lab's Lambda function: exactly what is deployed (stdlib and boto3 only)."""
