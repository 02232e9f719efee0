"""The facilitator: verify and settle payments through chain adapters, exactly once, with a journal."""
