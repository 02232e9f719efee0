"""Metering (issue 20): usage events from a provider's own code, meters, plans and entitlements, prepaid credits."""
