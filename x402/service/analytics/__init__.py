"""Analytics over the payment records: time series and breakdowns (``/v1/analytics/...``), served from rollups."""
