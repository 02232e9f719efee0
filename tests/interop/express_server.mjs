// An official @x402/express resource server settled through FACILITATOR_URL: GET /paid (exact, EIP-3009),
// GET /permit2 (exact, assetTransferMethod "permit2") and GET /metered (upto up to AMOUNT; the handler settles
// ?used=N with setSettlementOverrides).
// env: PORT (0 = any), FACILITATOR_URL, AMOUNT, ASSET, TOKEN_NAME, TOKEN_VERSION, PAY_TO.
// stdout: {"listening": port} once up; runs until killed.
import express from "express";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { registerExactEvmScheme } from "@x402/evm/exact/server";
import { UptoEvmScheme } from "@x402/evm/upto/server";

const NETWORK = "eip155:31337";

function need(name) {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is not set`);
  return value;
}

try {
  const facilitator = new HTTPFacilitatorClient({ url: need("FACILITATOR_URL") });
  const server = registerExactEvmScheme(new x402ResourceServer(facilitator), { networks: [NETWORK] });
  server.register(NETWORK, new UptoEvmScheme());
  const domain = { name: need("TOKEN_NAME"), version: need("TOKEN_VERSION") };
  const route = (scheme, extra) => ({
    accepts: {
      scheme,
      network: NETWORK,
      payTo: need("PAY_TO"),
      price: { amount: need("AMOUNT"), asset: need("ASSET"), extra: { ...domain, ...extra } },
    },
    description: "interop test resource",
    mimeType: "application/json",
  });
  const routes = {
    "GET /paid": route("exact", {}),
    "GET /permit2": route("exact", { assetTransferMethod: "permit2" }),
    "GET /metered": route("upto", {}),
  };
  const app = express();
  app.use(paymentMiddleware(routes, server));
  app.get("/paid", (_req, res) => res.json({ ok: true, paid: true }));
  app.get("/permit2", (_req, res) => res.json({ ok: true, permit2: true }));
  app.get("/metered", (req, res) => {
    if (req.query.used !== undefined) setSettlementOverrides(res, { amount: String(req.query.used) });
    res.json({ ok: true, metered: true });
  });
  app.get("/health", (_req, res) => res.json({ ok: true }));
  const listener = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", (err) => {
    if (err) {
      process.stderr.write(`express_server: ${err?.stack ?? err}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ listening: listener.address().port }) + "\n");
  });
  const stop = () => listener.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (err) {
  process.stderr.write(`express_server: ${err?.stack ?? err}\n`);
  process.exit(1);
}
