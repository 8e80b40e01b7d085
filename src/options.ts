/** What every layer's options share. */

/** Drop keys whose value is undefined, so they do not override defaults when spread. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
