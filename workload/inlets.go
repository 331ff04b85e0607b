package workload

// The inactive assets among a task's inlets and outlets
// (validate-inlets-and-outlets, Airflow's validate_inlets_and_outlets): the
// worker asks before it runs a task, and refuses to run one that reads or
// writes an asset no DAG declares any more.

// TaskAssets are the assets a task declares as inlets and outlets, as far as
// validate-inlets-and-outlets reads them: only Asset entries (an alias or a
// name or uri reference is resolved when the task runs, and Airflow checks
// only SerializedAsset entries here), each by name and uri, in the task's
// order.
type TaskAssets struct {
	Inlets  []AssetKey `json:"inlets,omitempty"`
	Outlets []AssetKey `json:"outlets,omitempty"`
}

// InactiveAssets returns the distinct assets of a (inlets first, then
// outlets, each once, in the order the task names them) for which active
// answers false, as the Asset profiles Airflow reports. Airflow builds a set
// and answers in its iteration order, which is unspecified; this order is
// the task's.
func (a TaskAssets) InactiveAssets(active func(AssetKey) (bool, error)) ([]AssetProfile, error) {
	out := []AssetProfile{}
	for _, k := range a.Keys() {
		ok, err := active(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			name, uri := k.Name, k.URI
			out = append(out, AssetProfile{Name: &name, URI: &uri, Type: "Asset"})
		}
	}
	return out, nil
}

// Keys returns the distinct assets of a, inlets first.
func (a TaskAssets) Keys() []AssetKey {
	var out []AssetKey
	seen := map[AssetKey]bool{}
	for _, k := range append(append([]AssetKey{}, a.Inlets...), a.Outlets...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
