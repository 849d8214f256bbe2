"""The API's routes, one module per family (v1, v2, rollouts, monitoring), each a ``router(parts, bodies)``
over the plain-Python service: they parse and answer, `PredictionService` and the other parts do the work."""
