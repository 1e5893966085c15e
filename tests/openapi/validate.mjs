// Validates an OpenAPI document with @apidevtools/swagger-parser (JSON Schema of OpenAPI 3.1 plus
// its own checks: $refs resolve, operationIds unique, path parameters declared, ...).
//   node validate.mjs <openapi.json>     exit 0 and "valid <title> <version>", else 1 and the errors
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
try {
  const api = await SwaggerParser.validate(file);
  if (!String(api.openapi).startsWith("3.1")) throw new Error(`openapi is ${api.openapi}, expected 3.1.x`);
  console.log(`valid ${api.info.title} ${api.info.version} (${Object.keys(api.paths).length} paths)`);
} catch (err) {
  console.error(`invalid: ${err.message}`);
  process.exit(1);
}
