// hello: answers every request with 200 and "Hello from JavaScript!\n".
addEventListener("fetch", (event) =>
  event.respondWith(
    new Response("Hello from JavaScript!\n", {
      headers: { "content-type": "text/plain" },
    }),
  ),
);
