package gateway

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeHITLBodies: the Human-in-the-loop bodies never panic, refuse
// only with FastAPI-shaped 422s, and accept only objects whose options (or
// chosen options) are a non-empty list of strings.
func FuzzDecodeHITLBodies(f *testing.F) {
	for _, s := range []string{
		`{"ti_id":"0190e3e4-3c2b-7a8e-9d0e-00000000beef","options":["A"],"subject":"s"}`,
		`{"ti_id":"0190e3e4-3c2b-7a8e-9d0e-00000000beef","options":[],"subject":"s","assigned_users":[{"id":"1"}]}`,
		`{"ti_id":"x","options":["A",1],"subject":null,"multiple":"yes","params":[]}`,
		`{"ti_id":"0190e3e4-3c2b-7a8e-9d0e-00000000beef","chosen_options":["A"],"params_input":{"a":1}}`,
		`[]`, `null`, `{"options":"A"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := decodeHITLRequest(body); err != nil {
			fuzzCheck422(t, err)
		} else if len(r.Options) == 0 || (len(r.Params) > 0 && r.Params[0] != '{') {
			t.Fatalf("accepted %q: options %v params %s", body, r.Options, r.Params)
		}
		if r, err := decodeHITLResponse(body); err != nil {
			fuzzCheck422(t, err)
		} else if len(r.ChosenOptions) == 0 || !json.Valid(body) {
			t.Fatalf("accepted %q: chosen_options %v", body, r.ChosenOptions)
		}
	})
}
