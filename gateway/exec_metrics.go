package gateway

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// POST /execution/metrics: the Task SDK forwards the metrics it aggregated
// (counters, gauges, timings) for a long-lived process to export. Airflow
// replays them into its stats backend (StatsD, OpenTelemetry). taskgate
// accepts the same body, refuses what Airflow refuses (422), logs each
// metric at debug level ("forwarded metric": kind, name, tags, value or
// values) and counts what it received (ForwardedMetrics); it exports
// nothing to a stats backend.

// forwardMetric is Airflow's ForwardMetric.
type forwardMetric struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Tags   map[string]string `json:"tags"`
	Value  *float64          `json:"value"`
	Delta  bool              `json:"delta"`
	Values []float64         `json:"values"`
}

// forwardMetricsBody is Airflow's ForwardMetricsBody.
type forwardMetricsBody struct {
	Metrics []forwardMetric `json:"metrics"`
}

var metricsModels = map[string]routeModel{
	"POST /execution/metrics": {Request: forwardMetricsBody{}, Status: http.StatusNoContent},
}

// MetricCounts is what POST /execution/metrics received since the server
// started: batches, and metrics of each kind.
type MetricCounts struct {
	Batches, Counters, Gauges, Timings uint64
}

// metricCounters are the counts behind ForwardedMetrics.
type metricCounters struct {
	batches, counters, gauges, timings atomic.Uint64
}

// ForwardedMetrics returns what POST /execution/metrics received.
func (s *Server) ForwardedMetrics() MetricCounts {
	m := &s.forwarded
	return MetricCounts{Batches: m.batches.Load(), Counters: m.counters.Load(), Gauges: m.gauges.Load(),
		Timings: m.timings.Load()}
}

// decodeForwardMetrics validates a ForwardMetricsBody (strict models).
func decodeForwardMetrics(body []byte) (forwardMetricsBody, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return forwardMetricsBody{}, verr
	}
	var out forwardMetricsBody
	raw := o.rawField("metrics", true, "[")
	var items []json.RawMessage
	if raw != nil {
		_ = json.Unmarshal(raw, &items)
	}
	out.Metrics = make([]forwardMetric, 0, len(items))
	for i, item := range items {
		loc := []any{"body", "metrics", i}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
			o.errs = append(o.errs, FieldError{Type: "model_type", Loc: loc,
				Msg: "Input should be a valid dictionary or instance of ForwardMetric", Input: rawInput(item)})
			continue
		}
		m := &object{fields: fields, loc: loc, used: map[string]bool{}}
		var fm forwardMetric
		if k := m.str("kind", true, false); k != nil {
			switch *k {
			case "counter", "gauge", "timing":
				fm.Kind = *k
			default:
				m.errs = append(m.errs, FieldError{Type: "enum", Loc: append(append([]any(nil), loc...), "kind"),
					Msg: "Input should be 'counter', 'gauge' or 'timing'", Input: *k,
					Ctx: map[string]any{"expected": "'counter', 'gauge' or 'timing'"}})
			}
		}
		if n := m.str("name", true, false); n != nil {
			fm.Name = *n
		}
		if t, ok := m.get("tags", false); ok && !isNull(t) && t[0] != '{' {
			m.fail("tags", "dict_type", "Input should be a valid dictionary", rawInput(t))
		} else if ok && !isNull(t) {
			var tags map[string]json.RawMessage
			_ = json.Unmarshal(t, &tags)
			fm.Tags = make(map[string]string, len(tags))
			for k, v := range tags {
				var s string
				if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
					m.errs = append(m.errs, FieldError{Type: "string_type",
						Loc: append(append([]any(nil), loc...), "tags", k), Msg: "Input should be a valid string",
						Input: rawInput(v)})
					continue
				}
				fm.Tags[k] = s
			}
		}
		fm.Value = m.number("value", true)
		if d, ok := m.get("delta", false); ok {
			switch string(d) {
			case "true":
				fm.Delta = true
			case "false":
			default:
				m.fail("delta", "bool_type", "Input should be a valid boolean", rawInput(d))
			}
		}
		if vs, ok := m.get("values", false); ok && !isNull(vs) && vs[0] != '[' {
			m.fail("values", "list_type", "Input should be a valid list", rawInput(vs))
		} else if ok && !isNull(vs) {
			var values []json.RawMessage
			_ = json.Unmarshal(vs, &values)
			for j, v := range values {
				var f float64
				if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &f) != nil {
					m.errs = append(m.errs, FieldError{Type: "float_type",
						Loc: append(append([]any(nil), loc...), "values", j), Msg: "Input should be a valid number",
						Input: rawInput(v)})
					continue
				}
				fm.Values = append(fm.Values, f)
			}
		}
		m.forbidExtra()
		o.errs = append(o.errs, m.errs...)
		out.Metrics = append(out.Metrics, fm)
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return forwardMetricsBody{}, verr
	}
	return out, nil
}

// handleForwardMetrics is POST /metrics: 204 once the batch is logged and
// counted.
func (s *Server) handleForwardMetrics(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	b, err := decodeForwardMetrics(body)
	if err != nil {
		return err
	}
	m := &s.forwarded
	m.batches.Add(1)
	ti := claimsOf(c).Subject
	for _, fm := range b.Metrics {
		switch fm.Kind {
		case "counter":
			m.counters.Add(1)
		case "gauge":
			m.gauges.Add(1)
		default:
			m.timings.Add(1)
		}
		if ce := s.log.Check(zap.DebugLevel, "forwarded metric"); ce != nil {
			ce.Write(zap.String("ti_id", ti), zap.String("kind", fm.Kind), zap.String("name", fm.Name),
				zap.Any("tags", fm.Tags), zap.Float64p("value", fm.Value), zap.Bool("delta", fm.Delta),
				zap.Float64s("values", fm.Values))
		}
	}
	return c.NoContent(http.StatusNoContent)
}
