package gateway

// routeModel says what a route's bodies are, for the OpenAPI document: the
// Go types (zero values) of its request body and of its success response.
// The document is generated from the route table and these types, never
// kept by hand.
type routeModel struct {
	// Request is the request body's type; nil: the route takes no body.
	Request any
	// Response is the success response body's type; nil: no body.
	Response any
	// Status is the success status (200 when zero).
	Status int
	// Wildcard names the parameter a route's trailing "*" stands for
	// (Airflow's "{key:path}"), "path" when empty.
	Wildcard string
	// Query lists the route's query parameters.
	Query []string
}

// modelTables holds each area's models, keyed "METHOD /path" exactly as the
// route is registered in routes() (for example
// "PATCH /execution/task-instances/:task_instance_id/run"). Each area keeps
// its table beside its handlers and adds it here.
var modelTables = []map[string]routeModel{
	assetModels,
	keyModels,
	healthDocModels,
	taskInstanceLifecycleModels,
	variableConnectionModels,
	xcomRouteModels,
	tokenRefreshModels,
	dagRunModels,
	hitlModels,
	stateStoreModels,
	connectionTestModels,
	callbackModels,
	metricsModels,
	tiQueryModels,
	jobModels,
	dagParsingModels,
}
