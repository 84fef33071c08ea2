/** Name rules and conversions shared by the API model and the config. @module */

/** `checkPassword` → `check_password`; names already in snake_case are unchanged. */
export function toSnakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** `check_password` → `checkPassword`. */
export function toCamelCase(name: string): string {
  return name.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** An API name: identifiers joined by dots (`auth`, `my_company.auth`). */
export const API_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** An RPC, event or parameter wire name. */
export const MEMBER_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
