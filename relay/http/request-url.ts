/**
 * A request's URL. `new URL(req.url, base)` reads a path that starts with `//` (`//?x`, a link
 * written as `${origin}/` + `/?x`) as a protocol-relative URL and throws; the request target is
 * always a path here, so it is put after the base's authority instead.
 *
 * @module
 */
export function requestUrl(target: string | undefined): URL {
  const path = target ?? '/'
  return new URL(`http://relay${path.startsWith('/') ? '' : '/'}${path}`)
}
