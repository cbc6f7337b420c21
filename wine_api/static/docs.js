// Swagger UI over this server's /openapi.json, with the tab's API key (if any) on every request it makes.
"use strict";
(() => {
  const urls = JSON.parse(document.getElementById("page-urls").textContent);
  const start = () => SwaggerUIBundle({
    url: urls.openapi, dom_id: "#swagger", deepLinking: true, validatorUrl: null, tryItOutEnabled: false,
    requestInterceptor: (request) => { Object.assign(request.headers, wineKey.headers()); return request; },
  });
  start();
  wineKey.onChange(start);
})();
