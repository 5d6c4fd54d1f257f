// Starts Swagger UI on the service's own specification. It is a file of its own, served from
// /docs/init.js, so that the page has no inline script and its policy can say script-src 'self'.
(function () {
  "use strict";
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The bearer token typed into Authorize lives in this page's memory only: never in
    // localStorage, gone on reload.
    persistAuthorization: false,
    tryItOutEnabled: true,
    displayOperationId: true,
    displayRequestDuration: true,
    deepLinking: true,
    // No ?url=... or ?configUrl=... from the address bar: the page documents this API only.
    queryConfigEnabled: false,
    // The default validator badge is an image from a third-party host.
    validatorUrl: null,
  });
})();
