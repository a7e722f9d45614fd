"""Outbound webhooks: Standard-Webhooks-signed CloudEvents to registered endpoints, retried on a
schedule, in order per subject, never to an address the operator has not allowed."""
