"""vdeliver: a delivery agent for Postfix virtual mailbox domains.

Kept empty on purpose: the pipe command imports this package on every message.
"""
__version__ = "0.1.0"
