// /docs: the endpoints of /openapi.json with their request and answer schemas, drawn without any external script.
"use strict";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// A schema (with its $refs resolved, to a depth) as readable JSON-like text.
function resolve(schema, spec, depth) {
  if (schema === null || typeof schema !== "object") return schema;
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return depth > 3 ? name : resolve(spec.components.schemas[name], spec, depth + 1);
  }
  const out = Array.isArray(schema) ? [] : {};
  for (const [key, value] of Object.entries(schema)) out[key] = resolve(value, spec, depth);
  return out;
}

function describe(spec, path, method, operation) {
  const section = element("section");
  section.append(element("h2", `${method.toUpperCase()} ${path}`));
  if (operation.description || operation.summary) section.append(element("p", operation.description || operation.summary));
  const body = operation.requestBody && operation.requestBody.content["application/json"];
  if (body) {
    section.append(element("h3", "request body"));
    section.append(element("pre", JSON.stringify(resolve(body.schema, spec, 0), null, 2)));
  }
  for (const [status, answer] of Object.entries(operation.responses || {})) {
    const content = answer.content && answer.content["application/json"];
    section.append(element("h3", `${status}: ${answer.description || ""}`));
    if (content && status.startsWith("2")) section.append(element("pre", JSON.stringify(resolve(content.schema, spec, 0), null, 2)));
  }
  return section;
}

document.addEventListener("DOMContentLoaded", async () => {
  const target = document.getElementById("endpoints");
  try {
    const spec = await (await fetch("/openapi.json")).json();
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(methods)) target.append(describe(spec, path, method, operation));
    }
  } catch (error) {
    target.append(element("p", `could not read /openapi.json: ${error}`));
  }
});
