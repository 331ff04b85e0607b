package pgstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Serialized mappers as Airflow 3.2's encode_partition_mapper writes them.
func identityJSON() string {
	return `{"__type": "airflow.partition_mappers.identity.IdentityMapper", "__var": {}}`
}

func temporalJSON(class, tz, in, out string) string {
	v := map[string]any{"input_format": in, "output_format": out}
	if tz != "" {
		v["timezone"] = tz
	}
	b, _ := json.Marshal(map[string]any{"__type": "airflow.partition_mappers.temporal." + class, "__var": v})
	return string(b)
}

// Each temporal mapper with its default formats (_BaseTemporalMapper's
// input_format, the class's default_output_format), timezone UTC.
func hourJSON() string {
	return temporalJSON("StartOfHourMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H")
}
func dayJSON() string {
	return temporalJSON("StartOfDayMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
}
func weekJSON() string {
	return temporalJSON("StartOfWeekMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d (W%V)")
}
func monthJSON() string {
	return temporalJSON("StartOfMonthMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y-%m")
}
func quarterJSON() string {
	return temporalJSON("StartOfQuarterMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y-Q{quarter}")
}
func yearJSON() string { return temporalJSON("StartOfYearMapper", "UTC", "%Y-%m-%dT%H:%M:%S", "%Y") }

func composite(class string, delimiter *string, mappers ...string) string {
	v := `"mappers": [` + strings.Join(mappers, ", ") + `]`
	if delimiter != nil {
		d, _ := json.Marshal(*delimiter)
		v = `"delimiter": ` + string(d) + `, ` + v
	}
	return `{"__type": "airflow.partition_mappers.` + class + `", "__var": {` + v + `}}`
}

func allowedJSON(keys ...string) string {
	b, _ := json.Marshal(map[string]any{"__type": "airflow.partition_mappers.allowed_key.AllowedKeyMapper",
		"__var": map[string]any{"allowed_keys": append([]string{}, keys...)}})
	return string(b)
}

// TestPartitionMappers ports the examples of Airflow's own tests of each
// mapper (airflow-core/tests/unit/partition_mappers/test_*.py), through the
// mappers' serialized form.
func TestPartitionMappers(t *testing.T) {
	t.Parallel()
	colons := "::"
	tests := []struct {
		name    string // the Airflow test the case comes from
		mapper  string
		key     string
		want    []string
		wantErr string // a part of the error
	}{
		{name: "test_identity.py::TestIdentityMapper::test_to_downstream", mapper: identityJSON(), key: "key", want: []string{"key"}},

		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfHourMapper]", mapper: hourJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026-02-10T14"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfDayMapper]", mapper: dayJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026-02-10"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfWeekMapper]", mapper: weekJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026-02-09 (W07)"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfMonthMapper]", mapper: monthJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026-02"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfQuarterMapper]", mapper: quarterJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026-Q1"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream[StartOfYearMapper]", mapper: yearJSON(),
			key: "2026-02-10T14:30:45", want: []string{"2026"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream_timezone_aware[23:00]",
			mapper: temporalJSON("StartOfDayMapper", "America/New_York", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"),
			key:    "2026-02-10T23:00:00", want: []string{"2026-02-10"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream_timezone_aware[01:00]",
			mapper: temporalJSON("StartOfDayMapper", "America/New_York", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"),
			key:    "2026-02-11T01:00:00", want: []string{"2026-02-11"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream_input_timezone_differs_from_mapper_timezone[04:00]",
			mapper: temporalJSON("StartOfDayMapper", "America/New_York", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"),
			key:    "2026-02-11T04:00:00+0000", want: []string{"2026-02-10"}},
		{name: "test_temporal.py::TestTemporalMappers::test_to_downstream_input_timezone_differs_from_mapper_timezone[06:00]",
			mapper: temporalJSON("StartOfDayMapper", "America/New_York", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"),
			key:    "2026-02-11T06:00:00+0000", want: []string{"2026-02-11"}},
		{name: "test_temporal.py::TestTemporalMappers::test_deserialize_legacy_payload_without_timezone",
			mapper: temporalJSON("StartOfHourMapper", "", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H"),
			key:    "2026-02-10T14:30:45", want: []string{"2026-02-10T14"}},
		// Beyond Airflow's examples: a week starting in the previous month,
		// the last quarter, a Z offset moved into a fixed-offset zone
		// (encode_timezone writes a FixedTimezone as its seconds).
		{name: "StartOfWeekMapper across a month", mapper: weekJSON(), key: "2026-03-01T10:00:00",
			want: []string{"2026-02-23 (W09)"}},
		{name: "StartOfQuarterMapper Q4", mapper: quarterJSON(), key: "2026-11-30T23:59:59", want: []string{"2026-Q4"}},
		{name: "StartOfDayMapper fixed offset, Z key",
			mapper: strings.Replace(temporalJSON("StartOfDayMapper", "UTC", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %z"),
				`"timezone":"UTC"`, `"timezone":19800`, 1),
			key: "2026-02-10T20:00:00Z", want: []string{"2026-02-11 +0530"}},
		// Python's strptime: unconverted data, and a key not of the format.
		{name: "strptime: unconverted data remains", mapper: dayJSON(), key: "2026-02-10T14:30:45Z",
			wantErr: "unconverted data remains: Z"},
		{name: "strptime: no match", mapper: dayJSON(), key: "2026-02-10",
			wantErr: "time data '2026-02-10' does not match format '%Y-%m-%dT%H:%M:%S'"},
		{name: "strptime: day out of range", mapper: dayJSON(), key: "2026-02-30T00:00:00",
			wantErr: "day is out of range for month"},

		{name: "test_product.py::TestProductMapper::test_to_downstream", mapper: composite("product.ProductMapper", nil, hourJSON(), dayJSON()),
			key: "2024-01-15T10:30:00|2024-01-15T10:30:00", want: []string{"2024-01-15T10|2024-01-15"}},
		{name: "test_product.py::TestProductMapper::test_to_downstream_wrong_segment_count",
			mapper: composite("product.ProductMapper", nil, hourJSON(), dayJSON()),
			key:    "2024-01-15T10:30:00|2024-01-15T10:30:00|extra", wantErr: "Expected 2 segments"},
		{name: "test_product.py::TestProductMapper::test_to_downstream_single_segment_for_two_mappers",
			mapper: composite("product.ProductMapper", nil, hourJSON(), dayJSON()),
			key:    "2024-01-15T10:30:00", wantErr: "Expected 2 segments"},
		{name: "test_product.py::TestProductMapper::test_custom_delimiter",
			mapper: composite("product.ProductMapper", &colons, hourJSON(), dayJSON()),
			key:    "2024-01-15T10:30:00::2024-01-15T10:30:00", want: []string{"2024-01-15T10::2024-01-15"}},
		{name: "test_product.py::TestProductMapper::test_custom_delimiter_wrong_segment_count",
			mapper: composite("product.ProductMapper", &colons, hourJSON(), dayJSON()),
			key:    "2024-01-15T10:30:00::2024-01-15T10:30:00::extra", wantErr: "Expected 2 segments"},
		{name: "test_product.py::TestProductMapper::test_three_mappers",
			mapper: composite("product.ProductMapper", nil, hourJSON(), dayJSON(), identityJSON()),
			key:    "2024-01-15T10:30:00|2024-01-15T10:30:00|raw", want: []string{"2024-01-15T10|2024-01-15|raw"}},

		{name: "test_chain.py::TestChainMapper::test_to_downstream",
			mapper: composite("chain.ChainMapper", nil, hourJSON(),
				temporalJSON("StartOfDayMapper", "UTC", "%Y-%m-%dT%H", "%Y-%m-%d")),
			key: "2024-01-15T10:30:00", want: []string{"2024-01-15"}},

		{name: "test_allowed_key.py::TestAllowedKeyMapper::test_to_downstream[us]", mapper: allowedJSON("us", "eu", "apac"),
			key: "us", want: []string{"us"}},
		{name: "test_allowed_key.py::TestAllowedKeyMapper::test_to_downstream[eu]", mapper: allowedJSON("us", "eu", "apac"),
			key: "eu", want: []string{"eu"}},
		{name: "test_allowed_key.py::TestAllowedKeyMapper::test_to_downstream_invalid_key", mapper: allowedJSON("us", "eu"),
			key: "apac", wantErr: "Key 'apac' not in allowed keys ['us', 'eu']"},
		{name: "test_allowed_key.py::TestAllowedKeyMapper::test_empty_allowed_keys", mapper: allowedJSON(),
			key: "any", wantErr: "not in allowed keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := decodeMapper(json.RawMessage(tt.mapper))
			if err != nil {
				t.Fatalf("decode %s: %v", tt.mapper, err)
			}
			got, err := m.toDownstream(tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("toDownstream(%q) = %q, %v; want an error with %q", tt.key, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("toDownstream(%q) (-want +got):\n%s", tt.key, diff)
			}
		})
	}
}

// TestDecodeMapperUnknownClass: a mapper class taskgate does not implement
// (a plugin's, or one newer than Airflow 3.2) is named in a typed error,
// also inside a composite mapper.
func TestDecodeMapperUnknownClass(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"__type": "my_plugin.mappers.RegionMapper", "__var": {"x": 1}}`,
		composite("chain.ChainMapper", nil, identityJSON(), `{"__type": "my_plugin.mappers.RegionMapper", "__var": {}}`),
	} {
		_, err := decodeMapper(json.RawMessage(raw))
		var unknown *unknownMapperError
		if !errors.As(err, &unknown) || unknown.class != "my_plugin.mappers.RegionMapper" {
			t.Errorf("decodeMapper(%s) = %v, want the unknown class named", raw, err)
		}
	}
}

// TestPartitionedTimetableMapperFor: get_partition_mapper(name=…, uri=…)
// of a serialized PartitionedAssetTimetable: the mapper set for the
// asset's name (an asset of the config, inside asset_all/asset_any too, or
// a name reference), else the default; a uri reference is not consulted
// when the asset has a name; without a default, IdentityMapper.
func TestPartitionedTimetableMapperFor(t *testing.T) {
	t.Parallel()
	data := `{"__version": 3, "dag": {"dag_id": "c", "timetable": {
		"__type": "airflow.timetables.simple.PartitionedAssetTimetable",
		"__var": {
			"asset_condition": {"__type": "asset_any", "objects": []},
			"partition_mapper_config": [
				[{"__type": "asset", "name": "daily", "uri": "s3://b/daily", "group": "asset", "extra": {}}, ` + dayJSON() + `],
				[{"__type": "asset_all", "objects": [
					{"__type": "asset", "name": "hourly", "uri": "s3://b/hourly", "group": "asset", "extra": {}}]}, ` + hourJSON() + `],
				[{"__type": "asset_ref", "name": "yearly"}, ` + yearJSON() + `],
				[{"__type": "asset_ref", "uri": "s3://b/monthly"}, ` + monthJSON() + `]
			],
			"default_partition_mapper": ` + allowedJSON("2026-03-01T10:20:30") + `}}}}`
	tt, err := decodePartitionedTimetable([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, uri, want string }{
		{"daily", "s3://b/daily", "2026-03-01"},
		{"hourly", "s3://b/hourly", "2026-03-01T10"},
		{"yearly", "s3://b/yearly", "2026"},
		{"monthly", "s3://b/monthly", "2026-03-01T10:20:30"}, // by name: the default
		{"", "s3://b/monthly", "2026-03"},
		{"other", "s3://b/other", "2026-03-01T10:20:30"},
	} {
		m, err := tt.mapperFor(c.name, c.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.toDownstream("2026-03-01T10:20:30")
		if err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("mapper of (%q, %q) maps to %q, %v; want %q", c.name, c.uri, got, err, c.want)
		}
	}

	noDefault := `{"dag": {"timetable": {"__type": "airflow.timetables.simple.PartitionedAssetTimetable",
		"__var": {"asset_condition": {"__type": "asset_any", "objects": []}, "partition_mapper_config": []}}}}`
	if tt, err = decodePartitionedTimetable([]byte(noDefault)); err != nil {
		t.Fatal(err)
	}
	if m, err := tt.mapperFor("a", "a"); err != nil || m != (identityMapper{}) {
		t.Errorf("default mapper = %#v, %v; want IdentityMapper", m, err)
	}
	other := `{"dag": {"timetable": {"__type": "airflow.timetables.simple.AssetTriggeredTimetable", "__var": {}}}}`
	if _, err := decodePartitionedTimetable([]byte(other)); err == nil {
		t.Error("an AssetTriggeredTimetable was read as partitioned")
	}
}
