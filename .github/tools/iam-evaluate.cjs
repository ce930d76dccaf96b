#!/usr/bin/env node
// Evaluates IAM requests against policies with @cloud-copilot/iam-simulate (AWS's evaluation
// logic: identity and resource policies, every condition operator). Reads a JSON array of
// requests on stdin and prints a JSON array of results in the same order:
//   request: {action, resource, principal, accountId?, context?, identityPolicies?: [doc],
//             resourcePolicy?: doc, trust?: bool}
//   result:  {decision: "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//             errors?, ignoredContextKeys?}
// `trust: true` evaluates the conditions of a role trust policy for
// sts:AssumeRoleWithWebIdentity. It uses runUnsafeSimulation (no context-key validation):
// iam-data's key list for that action omits the OIDC `<provider>:aud` / `<provider>:sub` keys
// that AWS documents for every OIDC provider (IAM User Guide, "Available keys for AWS OIDC
// federation"), so the validating path drops them and denies every token. In 0.1.173 the unsafe
// path crashes on a resource policy (it loads it without a name), so each trust statement is
// evaluated as an identity statement on the role: same Effect, Action and Condition; the
// caller checks the Principal (an exact ARN) itself.
"use strict";
const { runSimulation, runUnsafeSimulation } = require("@cloud-copilot/iam-simulate");

function simulation(req) {
  return {
    identityPolicies: (req.identityPolicies || []).map((policy, i) => ({ name: `p${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(req.resourcePolicy ? { resourcePolicy: req.resourcePolicy } : {}),
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.resource, accountId: req.accountId || "123456789012" },
      contextVariables: req.context || {},
    },
  };
}

async function evaluate(req) {
  if (req.trust) {
    const statements = req.resourcePolicy.Statement.map(({ Principal, ...rest }) => ({
      ...rest, Resource: req.resource,
    }));
    const asIdentity = { ...req, resourcePolicy: undefined,
      identityPolicies: [{ Version: "2012-10-17", Statement: statements }] };
    const result = runUnsafeSimulation(simulation(asIdentity), {});
    return { decision: typeof result === "string" ? result : result.result };
  }
  const response = await runSimulation(simulation(req), {});
  if (response.resultType === "error") {
    return { decision: "Error", errors: response.errors };
  }
  const ignored = response.resultType === "single"
    ? response.result.ignoredContextKeys
    : response.results.flatMap((r) => r.ignoredContextKeys || []);
  return { decision: response.overallResult, ignoredContextKeys: ignored || [] };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const requests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = [];
  for (const req of requests) results.push(await evaluate(req));
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exitCode = 2;
});
