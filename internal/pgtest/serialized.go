package pgtest

import "testing"

// Serialized tasks, as Airflow's SerializedBaseOperator writes them into a
// serialized DAG.

// SerializedAssetJSON is an Asset as BaseSerialization.serialize writes one
// in a task's inlets or outlets (group "asset", no extra).
func SerializedAssetJSON(name, uri string) map[string]any {
	return map[string]any{"__type": "asset",
		"__var": map[string]any{"name": name, "uri": uri, "group": "asset", "extra": map[string]any{}}}
}

// SerializedAliasJSON is an AssetAlias in a task's inlets or outlets.
func SerializedAliasJSON(name string) map[string]any {
	return map[string]any{"__type": "asset_alias", "__var": map[string]any{"name": name, "group": "asset"}}
}

// OperatorJSON is an EmptyOperator task with inlets and outlets (each
// written only when not empty, as the serializer leaves out defaults).
func OperatorJSON(taskID string, inlets, outlets []map[string]any) map[string]any {
	op := map[string]any{"task_id": taskID, "task_type": "EmptyOperator",
		"_task_module": "airflow.providers.standard.operators.empty", "ui_color": "#e8f7e4", "ui_fgcolor": "#000",
		"template_fields": []any{}, "downstream_task_ids": []any{}}
	for k, l := range map[string][]map[string]any{"inlets": inlets, "outlets": outlets} {
		if len(l) > 0 {
			items := make([]any, len(l))
			for i, v := range l {
				items[i] = v
			}
			op[k] = items
		}
	}
	return map[string]any{"__type": "operator", "__var": op}
}

// SerializedDag writes a DAG of tasks (OperatorJSON) as the serialized_dag
// of the DAG's latest version, as the DAG processor does (the dag and its
// first version created when missing). compressed writes data_compressed.
func (a *Airflow) SerializedDag(t testing.TB, dagID string, tasks []map[string]any, compressed bool) {
	t.Helper()
	l := make([]any, len(tasks))
	for i, v := range tasks {
		l[i] = v
	}
	dag := map[string]any{
		"__version": 3,
		"dag": map[string]any{
			"dag_id":           dagID,
			"fileloc":          "/opt/airflow/dags/" + dagID + ".py",
			"relative_fileloc": dagID + ".py",
			"timezone":         "UTC",
			"tasks":            l,
			"dag_dependencies": []any{},
			"timetable":        map[string]any{"__type": "airflow.timetables.simple.NullTimetable", "__var": map[string]any{}},
		},
	}
	a.writeSerializedDag(t, dagID, dag, compressed, nil)
}

// SerializedDagDocument writes a whole serialized DAG document ({"__version":
// …, "dag": {"dag_id": …, …}}) as the serialized_dag of the DAG's latest
// version, as SerializedDag does.
func (a *Airflow) SerializedDagDocument(t testing.TB, doc map[string]any, compressed bool) {
	t.Helper()
	dag, _ := doc["dag"].(map[string]any)
	dagID, _ := dag["dag_id"].(string)
	if dagID == "" {
		t.Fatal("pgtest: a serialized DAG without dag.dag_id")
	}
	a.writeSerializedDag(t, dagID, doc, compressed, nil)
}
