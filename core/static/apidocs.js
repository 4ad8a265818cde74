/* The API page: mount the vendored Swagger UI on the company's OpenAPI document.
   Same origin, so "Try it out" sends the session cookie; nothing is fetched from elsewhere
   (validatorUrl: null turns off the badge that would ask validator.swagger.io). */
(function () {
  "use strict";
  var mount = document.getElementById("swagger-ui");
  if (!mount || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.guanxiSwaggerUI = window.SwaggerUIBundle({
    url: mount.getAttribute("data-url") || "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: false,
    validatorUrl: null,
    // "Try it out" writes with the login session, so it sends the page's CSRF token.
    requestInterceptor: function (req) {
      req.headers["X-CSRFToken"] = mount.getAttribute("data-csrf") || "";
      return req;
    },
  });
})();
