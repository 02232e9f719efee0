"""The service roof: settings, app, server, CLI, storage, routes; composes chains, risk and wallets."""
