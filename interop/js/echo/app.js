// echo: streams the request body back, and describes the request in headers:
// `x-echo-method`, `x-echo-path`, and `x-echo-<name>` per request header.
// `/length` instead reads the whole body (await) and answers with its size.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === "/length") {
    const body = await request.arrayBuffer();
    return new Response(`${body.byteLength}\n`, {
      headers: { "content-type": "text/plain" },
    });
  }
  const headers = new Headers();
  headers.set("x-echo-method", request.method);
  headers.set("x-echo-path", url.pathname + url.search);
  for (const [name, value] of request.headers) {
    headers.append(`x-echo-${name}`, value);
  }
  return new Response(request.body, { headers });
}
