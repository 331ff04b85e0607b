// Package deploy holds the example Grafana dashboard and Prometheus alert
// rules; its test holds them to the metrics the server exports.
package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/taskgate/taskgate/metrics"
)

// exported returns every series name the server's registry exports
// (histograms as their _bucket, _sum and _count series), and the taskgate
// families among them.
func exported(t *testing.T) (names map[string]bool, families []string) {
	t.Helper()
	mfs, err := metrics.New().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		if strings.HasPrefix(n, "taskgate_") {
			families = append(families, n)
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	return names, families
}

var (
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// ours are the names of metrics taskgate exports: its own, the Go
	// runtime's and the process's.
	ours = regexp.MustCompile(`\b(?:taskgate|go|process)_[a-zA-Z0-9_]+\b`)
)

// metricNames returns the metric names an expression uses (label values in
// quotes aside).
func metricNames(expr string) []string {
	return ours.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

// checkExpr fails the test for an expression naming a metric the server
// does not export, and returns the names it uses.
func checkExpr(t *testing.T, where, expr string, names map[string]bool) []string {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expression", where)
	}
	used := metricNames(expr)
	for _, n := range used {
		if !names[n] {
			t.Errorf("%s: %s is not a metric taskgate exports", where, n)
		}
	}
	return used
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// TestGrafanaDashboard parses the dashboard, checks the fields Grafana needs
// to import it, that every panel queries only metrics the server exports,
// and that every taskgate family is on some panel.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks uid, title, schemaVersion or panels: %+v", d)
	}
	hasDatasource := slices.ContainsFunc(d.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query any    `json:"query"`
	}) bool {
		return v.Name == "datasource" && v.Type == "datasource"
	})
	if !hasDatasource {
		t.Error("no datasource template variable: the panels name ${datasource}")
	}
	names, families := exported(t)
	shown := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		where := "panel " + p.Title
		switch {
		case p.ID == 0 || ids[p.ID]:
			t.Errorf("%s: id %d missing or repeated", where, p.ID)
		case p.Type == "" || p.Title == "" || p.GridPos == nil || p.GridPos.H == 0 || p.GridPos.W == 0:
			t.Errorf("%s: type, title or gridPos missing", where)
		case p.Datasource == nil || p.Datasource.Type != "prometheus":
			t.Errorf("%s: not a Prometheus panel", where)
		case len(p.Targets) == 0:
			t.Errorf("%s: no targets", where)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			if tg.RefID == "" {
				t.Errorf("%s: a target without refId", where)
			}
			for _, n := range checkExpr(t, where, tg.Expr, names) {
				shown[n] = true
			}
		}
	}
	for _, f := range families {
		if !shown[f] && !shown[f+"_bucket"] && !shown[f+"_sum"] && !shown[f+"_count"] {
			t.Errorf("%s is on no panel of the dashboard", f)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules parses the alert rules as Prometheus's rule files and
// checks that each alert names only metrics the server exports.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key is an error, as for Prometheus
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	names, _ := exported(t)
	alerts := 0
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: name or rules missing", g.Name)
		}
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || r.Record != "" {
				t.Errorf("%s: an alert rule needs alert and no record", where)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: severity label or summary annotation missing", where)
			}
			if r.For != "" && !regexp.MustCompile(`^([0-9]+[smhdwy])+$`).MatchString(r.For) {
				t.Errorf("%s: for %q is no Prometheus duration", where, r.For)
			}
			if used := checkExpr(t, where, r.Expr, names); len(used) == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("%s: names no taskgate metric", where)
			}
			alerts++
		}
	}
	if alerts == 0 {
		t.Error("no alerts")
	}
}

// TestMetricNamesChecked proves the check bites: a name the server does
// not export is caught, a label value in quotes is not taken for one.
func TestMetricNamesChecked(t *testing.T) {
	names, _ := exported(t)
	got := metricNames(`rate(taskgate_nope_total{route="taskgate_x"}[5m]) + taskgate_heartbeats_total`)
	if !slices.Equal(got, []string{"taskgate_nope_total", "taskgate_heartbeats_total"}) {
		t.Fatalf("metricNames = %v", got)
	}
	if names["taskgate_nope_total"] || !names["taskgate_heartbeats_total"] ||
		!names["taskgate_http_request_duration_seconds_bucket"] {
		t.Fatal("exported names are wrong")
	}
}
