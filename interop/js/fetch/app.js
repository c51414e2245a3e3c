// fetch: GETs the URL in the `x-url` request header and answers 200 with the
// upstream body and `x-upstream-status`, or 502 with the error.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const target = request.headers.get("x-url");
  if (!target) {
    return new Response("missing x-url\n", { status: 400 });
  }
  try {
    const upstream = await fetch(target);
    const text = await upstream.text();
    return new Response(text, {
      headers: { "x-upstream-status": String(upstream.status) },
    });
  } catch (e) {
    return new Response(`fetch failed: ${e}\n`, { status: 502 });
  }
}
