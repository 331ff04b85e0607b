package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// A DAG processor publishes what parsing one file produced (Airflow's POST
// /jobs/{job_id}/parse-results, API version 2027-02-28): its serialized
// DAGs with their source, its import errors and its DAGs' warnings, written
// atomically with a checkpoint that makes a retry idempotent.

// DagParseResultBody is Airflow's DagParseResultBody.
type DagParseResultBody struct {
	AttemptID         string                     `json:"attempt_id"`
	BundleName        string                     `json:"bundle_name"`
	RelativeFileloc   string                     `json:"relative_fileloc"`
	DispatchSequence  int64                      `json:"dispatch_sequence"`
	BundleRevision    *string                    `json:"bundle_revision"`
	BundleVersion     *string                    `json:"bundle_version"`
	VersionData       map[string]any             `json:"version_data"`
	ParseDuration     float64                    `json:"parse_duration"`
	SerializedDags    []map[string]any           `json:"serialized_dags"`
	ImportErrors      map[string]string          `json:"import_errors"`
	Warnings          []ParseWarning             `json:"warnings"`
	ParsedDefinitions []string                   `json:"parsed_definitions"`
	SourceCodes       map[string]ParseSourceCode `json:"source_codes"`
}

// ParseWarning is Airflow's ParseWarning.
type ParseWarning struct {
	DagID       string `json:"dag_id"`
	WarningType string `json:"warning_type"`
	Message     string `json:"message"`
}

// ParseSourceCode is Airflow's ParseSourceCode: null source means
// unavailable.
type ParseSourceCode struct {
	SourceCode *string `json:"source_code"`
	Language   string  `json:"language"`
}

// DagParseResultResponse is Airflow's DagParseResultResponse.
type DagParseResultResponse struct {
	AttemptID  string `json:"attempt_id"`
	AcceptedAt pyTime `json:"accepted_at"`
}

var dagParsingModels = map[string]routeModel{
	"POST /execution/jobs/:job_id/parse-results": {Request: DagParseResultBody{}, Response: DagParseResultResponse{}},
}

// sourceUnavailable is the dag_code of a DAG whose source the processor
// could not capture.
const sourceUnavailable = "Source unavailable"

// maxSafeInteger is dispatch_sequence's bound, 2**53 - 1.
const maxSafeInteger = 1<<53 - 1

// parseResultRefusal is Airflow's reason-only detail of a refused
// publication.
func parseResultRefusal(status int, reason string) *APIError {
	return &APIError{Status: status, Detail: map[string]any{"reason": reason}}
}

// validRelativeFileloc is DagParseTokenBody.validate_relative_fileloc: a
// normalized bundle-relative path.
func validRelativeFileloc(p string) bool {
	if strings.ContainsAny(p, "\\\x00") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// parseResultRequest is a decoded publication: the body and its model
// dump (model_dump(mode="json")), which the payload hash is taken of.
type parseResultRequest struct {
	result workload.ParseResult
	dump   map[string]any
}

// decodeParseResult validates a DagParseResultBody as pydantic does: the
// fields, then (when they are valid) the model's file-scope checks.
func decodeParseResult(body []byte) (*parseResultRequest, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return nil, verr
	}
	req := &parseResultRequest{dump: map[string]any{}}
	r := &req.result
	before := len(o.errs)
	o.uuidField("attempt_id")
	if len(o.errs) == before {
		var id string
		_ = json.Unmarshal(o.fields["attempt_id"], &id)
		r.AttemptID, _ = scopes.CanonicalUUID(id)
	}
	if s := o.str("bundle_name", true, false); s != nil {
		o.strLen("bundle_name", s, 1, 250)
		r.BundleName = *s
	}
	if s := o.str("relative_fileloc", true, false); s != nil {
		before := len(o.errs)
		o.strLen("relative_fileloc", s, 1, 2000)
		if len(o.errs) == before && !validRelativeFileloc(*s) {
			o.valueError([]any{"body", "relative_fileloc"}, "The file location must be a normalized bundle-relative path", *s)
		}
		r.RelativeFileloc = *s
	}
	if n := o.integer("dispatch_sequence", true, false); n != nil {
		switch {
		case *n < 1:
			o.errs = append(o.errs, FieldError{Type: "greater_than_equal", Loc: []any{"body", "dispatch_sequence"},
				Msg: "Input should be greater than or equal to 1", Input: *n, Ctx: map[string]any{"ge": 1}})
		case *n > maxSafeInteger:
			o.errs = append(o.errs, FieldError{Type: "less_than_equal", Loc: []any{"body", "dispatch_sequence"},
				Msg: fmt.Sprintf("Input should be less than or equal to %d", maxSafeInteger), Input: *n,
				Ctx: map[string]any{"le": maxSafeInteger}})
		}
		r.DispatchSequence = int64(*n)
	}
	var revision any
	if v, ok := o.get("bundle_revision", false); ok && !isNull(v) {
		before := len(o.errs)
		o.uuidField("bundle_revision")
		if len(o.errs) == before {
			var id string
			_ = json.Unmarshal(v, &id)
			revision, _ = scopes.CanonicalUUID(id)
		}
	}
	r.BundleVersion = o.str("bundle_version", false, true)
	o.strLen("bundle_version", r.BundleVersion, 0, 200)
	var versionData any
	if v, ok := o.get("version_data", false); ok && !isNull(v) {
		if v[0] != '{' {
			o.fail("version_data", "dict_type", "Input should be a valid dictionary", rawInput(v))
		} else {
			versionData = v
		}
	}
	if _, ok := o.get("parse_duration", true); ok {
		if f := o.number("parse_duration", false); f != nil {
			switch {
			case math.IsInf(*f, 0) || math.IsNaN(*f):
				o.fail("parse_duration", "finite_number", "Input should be a finite number", *f)
			case *f < 0:
				o.errs = append(o.errs, FieldError{Type: "greater_than_equal", Loc: []any{"body", "parse_duration"},
					Msg: "Input should be greater than or equal to 0", Input: *f, Ctx: map[string]any{"ge": 0}})
			default:
				r.ParseDuration = *f
			}
		}
	}
	dags := o.dictList("serialized_dags")
	r.ImportErrors = o.strDict("import_errors")
	r.Warnings = o.parseWarnings("warnings")
	r.ParsedDefinitions = o.strList("parsed_definitions", false, false, 0)
	sources := o.sourceCodes("source_codes")
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return nil, verr
	}
	if r.ParsedDefinitions == nil {
		r.ParsedDefinitions = []string{}
	}
	if msg := checkFileScope(r, dags, sources); msg != "" {
		return nil, &ValidationError{[]FieldError{{Type: "value_error", Loc: []any{"body"}, Msg: "Value error, " + msg,
			Input: o.inputValue(), Ctx: map[string]any{"error": map[string]any{}}}}}
	}
	for _, doc := range dags {
		d, err := workload.ParseSerializedDag(doc)
		if err != nil {
			// Still named, for the checks that precede this refusal.
			if r.Invalid == nil {
				r.Invalid = err
			}
			var top struct {
				Dag struct {
					DagID string `json:"dag_id"`
				} `json:"dag"`
			}
			_ = json.Unmarshal(doc, &top)
			d = workload.ParsedDag{DagID: top.Dag.DagID}
		}
		src := sources[d.Fileloc]
		d.Source = sourceUnavailable
		if src.SourceCode != nil {
			d.Source = *src.SourceCode
		}
		d.SourceHash = workload.SourceHash(d.Source)
		r.Dags = append(r.Dags, d)
	}
	r.SourceKey = workload.SourceKey(r.BundleName, r.RelativeFileloc)
	duration := strconv.FormatFloat(r.ParseDuration, 'g', -1, 64)
	if !strings.ContainsAny(duration, ".e") {
		duration += ".0"
	}
	sourceDump := map[string]any{}
	for path, s := range sources {
		sourceDump[path] = s
	}
	req.dump = map[string]any{
		"attempt_id": r.AttemptID, "bundle_name": r.BundleName, "relative_fileloc": r.RelativeFileloc,
		"dispatch_sequence": r.DispatchSequence, "bundle_revision": revision, "bundle_version": r.BundleVersion,
		"version_data": versionData, "parse_duration": json.Number(duration), "serialized_dags": dags,
		"import_errors": r.ImportErrors, "warnings": r.Warnings, "parsed_definitions": r.ParsedDefinitions,
		"source_codes": sourceDump,
	}
	return req, nil
}

// checkFileScope is DagParseResultBody.validate_file_scope: every DAG has
// a dag_id (no two the same), a relative_fileloc and a fileloc; every
// location is a normalized path inside the published file or container;
// source_codes names exactly the DAGs' filelocs; warnings name the
// publication's DAGs. It returns the refusal's message, or "".
func checkFileScope(r *workload.ParseResult, dags []json.RawMessage, sources map[string]ParseSourceCode) string {
	paths := append(slices.Clone(r.ParsedDefinitions), mapKeys(r.ImportErrors)...)
	ids := map[string]bool{}
	filelocs := map[string]bool{}
	for _, doc := range dags {
		var top struct {
			Dag json.RawMessage `json:"dag"`
		}
		_ = json.Unmarshal(doc, &top)
		var dag map[string]json.RawMessage
		if len(top.Dag) == 0 || top.Dag[0] != '{' || json.Unmarshal(top.Dag, &dag) != nil {
			return "A serialized Dag must contain a dag_id"
		}
		id, ok := jsonString(dag["dag_id"])
		if !ok {
			return "A serialized Dag must contain a dag_id"
		}
		if ids[id] {
			return "Duplicate Dag id in publication"
		}
		ids[id] = true
		rel, ok := jsonString(dag["relative_fileloc"])
		if !ok {
			return "Every definition must have a bundle-relative location"
		}
		paths = append(paths, rel)
		fileloc, ok := jsonString(dag["fileloc"])
		if !ok {
			return "A serialized Dag must contain a fileloc"
		}
		filelocs[fileloc] = true
	}
	for _, p := range paths {
		if len([]rune(p)) > 2000 {
			return "Definition location exceeds 2000 characters"
		}
		if !validRelativeFileloc(p) {
			return "The file location must be a normalized bundle-relative path"
		}
		if p != r.RelativeFileloc && !strings.HasPrefix(p, r.RelativeFileloc+"/") {
			return "Definition or diagnostic is outside the published file or container"
		}
	}
	same := len(sources) == len(filelocs)
	for f := range sources {
		same = same && filelocs[f]
	}
	if !same {
		return "Supply source code, or explicit null, for every serialized fileloc"
	}
	for _, w := range r.Warnings {
		if !ids[w.DagID] {
			return "Warnings must refer to Dags in this publication"
		}
	}
	return ""
}

func jsonString(v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// valueError records a field validator's refusal.
func (o *object) valueError(loc []any, msg string, input any) {
	o.errs = append(o.errs, FieldError{Type: "value_error", Loc: loc, Msg: "Value error, " + msg, Input: input,
		Ctx: map[string]any{"error": map[string]any{}}})
}

// dictList reads a required list[dict[str, Any]] field.
func (o *object) dictList(name string) []json.RawMessage {
	v := o.rawField(name, true, "[")
	if v == nil {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(v, &items) != nil {
		o.fail(name, "list_type", "Input should be a valid list", rawInput(v))
		return nil
	}
	for i, it := range items {
		if len(it) == 0 || it[0] != '{' {
			o.errs = append(o.errs, FieldError{Type: "dict_type", Loc: []any{"body", name, i},
				Msg: "Input should be a valid dictionary", Input: rawInput(it)})
		}
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return items
}

// strDict reads an optional dict[str, str] field (default {}).
func (o *object) strDict(name string) map[string]string {
	out := map[string]string{}
	v := o.rawField(name, false, "{")
	if v == nil {
		return out
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(v, &raw)
	for _, k := range mapKeysRaw(raw) {
		s, ok := jsonString(raw[k])
		if !ok {
			o.errs = append(o.errs, FieldError{Type: "string_type", Loc: []any{"body", name, k},
				Msg: "Input should be a valid string", Input: rawInput(raw[k])})
			continue
		}
		out[k] = s
	}
	return out
}

// sub validates a nested object of a field's value at loc.
func (o *object) sub(v json.RawMessage, loc []any) *object {
	var fields map[string]json.RawMessage
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &fields) != nil {
		o.errs = append(o.errs, FieldError{Type: "model_type", Loc: loc,
			Msg: "Input should be a valid dictionary or instance of the model", Input: rawInput(v)})
		return nil
	}
	return &object{fields: fields, loc: loc, used: map[string]bool{}}
}

// parseWarnings reads an optional list[ParseWarning] field (default []).
func (o *object) parseWarnings(name string) []workload.DagWarning {
	out := []workload.DagWarning{}
	v := o.rawField(name, false, "[")
	if v == nil {
		return out
	}
	var items []json.RawMessage
	_ = json.Unmarshal(v, &items)
	for i, it := range items {
		w := o.sub(it, []any{"body", name, i})
		if w == nil {
			continue
		}
		var pw workload.DagWarning
		if s := w.str("dag_id", true, false); s != nil {
			w.strLen("dag_id", s, 1, 250)
			pw.DagID = *s
		}
		if s := w.str("warning_type", true, false); s != nil {
			if slices.Contains(workload.DagWarningTypes, *s) {
				pw.WarningType = *s
			} else {
				w.literalFail("warning_type", workload.DagWarningTypes, *s)
			}
		}
		if s := w.str("message", true, false); s != nil {
			pw.Message = *s
		}
		w.forbidExtra()
		o.errs = append(o.errs, w.errs...)
		out = append(out, pw)
	}
	return out
}

// sourceCodes reads the required dict[str, ParseSourceCode] field.
func (o *object) sourceCodes(name string) map[string]ParseSourceCode {
	v := o.rawField(name, true, "{")
	if v == nil {
		return nil
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(v, &raw)
	out := make(map[string]ParseSourceCode, len(raw))
	for _, k := range mapKeysRaw(raw) {
		s := o.sub(raw[k], []any{"body", name, k})
		if s == nil {
			continue
		}
		var sc ParseSourceCode
		sc.SourceCode = s.str("source_code", true, true)
		if l := s.str("language", true, false); l != nil {
			s.strLen("language", l, 1, 64)
			sc.Language = *l
		}
		s.forbidExtra()
		o.errs = append(o.errs, s.errs...)
		out[k] = sc
	}
	return out
}

func mapKeysRaw(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// handlePublishParseResult is POST /jobs/{job_id}/parse-results: the
// token's Job publishes one file's results; the answer is the receipt of
// the publication, or of the same attempt accepted before.
func (s *Server) handlePublishParseResult(c echo.Context) error {
	id, err := jobIDParam(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	req, err := decodeParseResult(body)
	if err != nil {
		return err
	}
	claims := claimsOf(c)
	if own, _ := claims.JobID(); own != id {
		return parseResultRefusal(http.StatusNotFound, "not_found")
	}
	if !slices.Contains(claims.DagBundles(), req.result.BundleName) {
		return parseResultRefusal(http.StatusForbidden, "bundle_not_granted")
	}
	dump, err := json.Marshal(req.dump)
	if err != nil {
		return fmt.Errorf("gateway: parse result of job %d: %w", id, err)
	}
	r := &req.result
	if r.PayloadHash, err = workload.PayloadHash(dump); errors.Is(err, workload.ErrParseResultTooLarge) {
		return &APIError{Status: http.StatusRequestEntityTooLarge, Detail: "Parse result exceeds 16 MiB"}
	} else if err != nil {
		return &APIError{Status: http.StatusUnprocessableEntity, Detail: "Invalid JSON value"}
	}
	r.JobID = id
	r.SessionID, _ = scopes.CanonicalUUID(claims.Subject)
	// Microseconds, as the database keeps them: a replay's receipt then
	// equals the first answer.
	now := s.now().UTC().Truncate(time.Microsecond)
	receipt, err := s.cfg.Store.PublishParseResult(c.Request().Context(), r, now,
		func(st workload.ParseState) (*workload.ParseReceipt, error) {
			return workload.DecideParseResult(r, st)
		})
	var refused *workload.PublicationError
	if errors.As(err, &refused) {
		return publicationRefusal(refused)
	} else if err != nil {
		return err
	}
	s.log.Info("dag parse result published", zap.Int64("job_id", id), zap.String("bundle", r.BundleName),
		zap.String("attempt_id", receipt.AttemptID), zap.Int("dags", len(r.Dags)))
	return c.JSON(http.StatusOK, DagParseResultResponse{AttemptID: receipt.AttemptID, AcceptedAt: pyTime(receipt.AcceptedAt)})
}

// publicationRefusal answers a refused publication with Airflow's status
// and detail.
func publicationRefusal(e *workload.PublicationError) error {
	switch e.Reason {
	case workload.ReasonJobClosed:
		return parseResultRefusal(http.StatusForbidden, e.Reason)
	case workload.ReasonInvalidSerializedDag:
		return &APIError{Status: http.StatusUnprocessableEntity, Detail: "Invalid serialized Dag"}
	default:
		return parseResultRefusal(http.StatusConflict, e.Reason)
	}
}
