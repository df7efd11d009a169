// Swagger UI from the vendored swagger-ui-dist (no CDN), on the twin's own OpenAPI spec.
// validatorUrl null: no badge fetched from validator.swagger.io.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  persistAuthorization: false,
});
