/**
 * A quick JSON Schema (draft-07) check for the keywords configuration schemas use, so that a
 * valid configuration is accepted without loading and compiling Ajv.
 *
 * It answers `valid` only when Ajv (with the options config validation uses: `strict: false`,
 * no coercion, no defaults) would accept the value too; `invalid` only when Ajv would reject it;
 * `unknown` whenever it cannot be sure: a keyword it does not implement (`$ref`, `not`, `format`,
 * `patternProperties`, ...), a number that is not finite, an enum of objects, a pattern that does
 * not compile. Callers hand anything but `valid` to Ajv, which decides and writes the report.
 *
 * Each keyword applies as Ajv applies it: only to values of its type (`minimum` to numbers,
 * `properties` to objects), with properties read by plain access (a property whose value is
 * `undefined` counts as absent) and additional properties found with `for...in`.
 *
 * @module
 * @internal
 */

/** The verdict of {@link quickCheck}. */
export type QuickVerdict = 'valid' | 'invalid' | 'unknown';

type Schema = Record<string, unknown>;

/** Keywords that never affect the verdict. */
const ANNOTATIONS = new Set(['$schema', 'title', 'description', 'default', 'examples', '$comment']);

const patterns = new Map<string, RegExp | null>();

function patternOf(source: string): RegExp | null {
  let re = patterns.get(source);
  if (re === undefined) {
    try {
      // Ajv's default (`unicodeRegExp: true`) compiles patterns with the `u` flag.
      re = new RegExp(source, 'u');
    } catch {
      re = null;
    }
    patterns.set(source, re);
  }
  return re;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPrimitive(value: unknown): boolean {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** Combines the verdicts of keywords that must all hold: one `invalid` decides. */
class Verdict {
  invalid = false;
  unknown = false;
  add(verdict: QuickVerdict): void {
    if (verdict === 'invalid') this.invalid = true;
    else if (verdict === 'unknown') this.unknown = true;
  }
  /** True when nothing later can change the result. */
  get decided(): boolean {
    return this.invalid;
  }
  get result(): QuickVerdict {
    return this.invalid ? 'invalid' : this.unknown ? 'unknown' : 'valid';
  }
}

function typeVerdict(type: unknown, value: unknown): QuickVerdict {
  const types = Array.isArray(type) ? type : [type];
  if (types.length === 0) return 'unknown';
  let unknown = false;
  for (const t of types) {
    switch (t) {
      case 'object':
        if (isObject(value)) return 'valid';
        break;
      case 'array':
        if (Array.isArray(value)) return 'valid';
        break;
      case 'string':
        if (typeof value === 'string') return 'valid';
        break;
      case 'boolean':
        if (typeof value === 'boolean') return 'valid';
        break;
      case 'null':
        if (value === null) return 'valid';
        break;
      case 'number':
      case 'integer':
        if (typeof value === 'number') {
          // NaN and ±Infinity depend on Ajv's strictNumbers option: let Ajv decide.
          if (!Number.isFinite(value)) unknown = true;
          else if (t === 'number' || Number.isInteger(value)) return 'valid';
        }
        break;
      default:
        unknown = true;
    }
  }
  return unknown ? 'unknown' : 'invalid';
}

function numberVerdict(keyword: string, limit: unknown, value: number): QuickVerdict {
  if (typeof limit !== 'number' || !Number.isFinite(value)) return 'unknown';
  switch (keyword) {
    case 'minimum':
      return value >= limit ? 'valid' : 'invalid';
    case 'maximum':
      return value <= limit ? 'valid' : 'invalid';
    case 'exclusiveMinimum':
      return value > limit ? 'valid' : 'invalid';
    default: // exclusiveMaximum
      return value < limit ? 'valid' : 'invalid';
  }
}

function countVerdict(keyword: string, limit: unknown, count: number): QuickVerdict {
  if (typeof limit !== 'number') return 'unknown';
  return (keyword.startsWith('min') ? count >= limit : count <= limit) ? 'valid' : 'invalid';
}

function enumVerdict(values: unknown, value: unknown): QuickVerdict {
  if (!Array.isArray(values) || !values.every(isPrimitive)) return 'unknown';
  if (typeof value === 'number' && !Number.isFinite(value)) return 'unknown';
  return values.includes(value) ? 'valid' : 'invalid';
}

/**
 * Checks `value` against `schema`. See the module comment for what `valid`, `invalid` and
 * `unknown` promise.
 */
export function quickCheck(schema: unknown, value: unknown): QuickVerdict {
  if (schema === true) return 'valid';
  if (schema === false) return 'invalid';
  if (!isObject(schema)) return 'unknown';
  const verdict = new Verdict();
  for (const keyword of Object.keys(schema)) {
    if (verdict.decided) break;
    if (ANNOTATIONS.has(keyword)) continue;
    const arg = (schema as Schema)[keyword];
    switch (keyword) {
      case 'type':
        verdict.add(typeVerdict(arg, value));
        break;
      case 'enum':
        verdict.add(enumVerdict(arg, value));
        break;
      case 'const':
        verdict.add(enumVerdict([arg], value));
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        if (typeof value === 'number') verdict.add(numberVerdict(keyword, arg, value));
        break;
      case 'minLength':
      case 'maxLength':
        // Ajv counts code points, not UTF-16 units.
        if (typeof value === 'string') verdict.add(countVerdict(keyword, arg, [...value].length));
        break;
      case 'pattern':
        if (typeof value === 'string') {
          const re = typeof arg === 'string' ? patternOf(arg) : null;
          verdict.add(re === null ? 'unknown' : re.test(value) ? 'valid' : 'invalid');
        }
        break;
      case 'minItems':
      case 'maxItems':
        if (Array.isArray(value)) verdict.add(countVerdict(keyword, arg, value.length));
        break;
      case 'items':
        if (Array.isArray(value)) {
          if (!isObject(arg) && typeof arg !== 'boolean') verdict.add('unknown');
          else for (const item of value as unknown[]) verdict.add(quickCheck(arg, item));
        }
        break;
      case 'minProperties':
      case 'maxProperties':
        if (isObject(value)) verdict.add(countVerdict(keyword, arg, Object.keys(value).length));
        break;
      case 'required':
        if (isObject(value)) {
          if (!Array.isArray(arg)) verdict.add('unknown');
          else for (const name of arg as unknown[]) verdict.add(typeof name !== 'string' ? 'unknown' : value[name] !== undefined ? 'valid' : 'invalid');
        }
        break;
      case 'properties':
        if (isObject(value)) {
          if (!isObject(arg)) verdict.add('unknown');
          else
            for (const [name, sub] of Object.entries(arg)) {
              const property = value[name];
              if (property !== undefined) verdict.add(quickCheck(sub, property));
            }
        }
        break;
      case 'additionalProperties':
        if (isObject(value)) {
          const known = isObject(schema['properties']) ? schema['properties'] : {};
          if (schema['patternProperties'] !== undefined) verdict.add('unknown');
          else
            for (const name in value) {
              if (Object.prototype.hasOwnProperty.call(known, name)) continue;
              verdict.add(quickCheck(arg, value[name]));
            }
        }
        break;
      case 'propertyNames':
        if (isObject(value)) for (const name in value) verdict.add(quickCheck(arg, name));
        break;
      case 'oneOf':
      case 'anyOf':
      case 'allOf': {
        if (!Array.isArray(arg) || arg.length === 0) {
          verdict.add('unknown');
          break;
        }
        const results = (arg as unknown[]).map((sub) => quickCheck(sub, value));
        const valid = results.filter((r) => r === 'valid').length;
        const unknown = results.includes('unknown');
        if (keyword === 'allOf') for (const r of results) verdict.add(r);
        else if (keyword === 'anyOf') verdict.add(valid > 0 ? 'valid' : unknown ? 'unknown' : 'invalid');
        else verdict.add(valid > 1 ? 'invalid' : unknown ? 'unknown' : valid === 1 ? 'valid' : 'invalid');
        break;
      }
      default:
        verdict.add('unknown');
    }
  }
  return verdict.result;
}
