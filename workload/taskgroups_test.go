package workload

import (
	"errors"
	"reflect"
	"testing"
)

func TestSerializedTaskGroups(t *testing.T) {
	for _, c := range []struct {
		name    string
		doc     string
		want    TaskGroups
		wantErr bool
	}{
		{name: "no task_group", doc: `{"dag": {"tasks": []}}`, want: TaskGroups{}},
		{name: "null task_group", doc: `{"dag": {"task_group": null}}`, want: TaskGroups{}},
		{name: "root alone", doc: `{"dag": {"task_group": {"_group_id": null, "prefix_group_id": true,
			"children": {"t": ["operator", "t"]}}}}`, want: TaskGroups{}},
		{name: "two groups and a task outside them", doc: `{"dag": {"task_group": {"_group_id": null,
			"prefix_group_id": true, "children": {
				"group1": ["taskgroup", {"_group_id": "group1", "prefix_group_id": true, "children": {
					"group1.task2": ["operator", "group1.task2"], "group1.task1": ["operator", "group1.task1"]}}],
				"group2": ["taskgroup", {"_group_id": "group2", "prefix_group_id": true, "children": {
					"group2.task3": ["operator", "group2.task3"]}}],
				"task4": ["operator", "task4"]}}}}`,
			want: TaskGroups{"group1": {"group1.task1", "group1.task2"}, "group2": {"group2.task3"}}},
		{name: "nested groups: the parent's prefix, its tasks include the child's", doc: `{"dag": {"task_group": {
			"_group_id": null, "prefix_group_id": true, "children": {
				"outer": ["taskgroup", {"_group_id": "outer", "prefix_group_id": true, "children": {
					"outer.a": ["operator", "outer.a"],
					"outer.inner": ["taskgroup", {"_group_id": "inner", "prefix_group_id": true, "children": {
						"outer.inner.b": ["operator", "outer.inner.b"]}}]}}]}}}}`,
			want: TaskGroups{"outer": {"outer.a", "outer.inner.b"}, "outer.inner": {"outer.inner.b"}}},
		{name: "a parent without prefix_group_id leaves its child's id alone", doc: `{"dag": {"task_group": {
			"_group_id": null, "prefix_group_id": true, "children": {
				"outer": ["taskgroup", {"_group_id": "outer", "prefix_group_id": false, "children": {
					"inner": ["taskgroup", {"_group_id": "inner", "prefix_group_id": true, "children": {
						"inner.b": ["operator", "inner.b"]}}]}}]}}}}`,
			want: TaskGroups{"outer": {"inner.b"}, "inner": {"inner.b"}}},
		{name: "an empty group", doc: `{"dag": {"task_group": {"_group_id": null, "children": {
			"g": ["taskgroup", {"_group_id": "g", "children": {}}]}}}}`, want: TaskGroups{"g": nil}},
		{name: "a mapped task group with a mapped task", doc: `{"dag": {"task_group": {"_group_id": null,
			"prefix_group_id": true, "children": {"group1": ["taskgroup", {"_group_id": "group1",
				"prefix_group_id": true, "expand_input": {"type": "dict-of-lists", "value": {}},
				"children": {"group1.add_one": ["operator", "group1.add_one"]}}]}}}}`,
			want: TaskGroups{"group1": {"group1.add_one"}}},
		{name: "not json", doc: `{`, wantErr: true},
		{name: "a child of an unknown type", doc: `{"dag": {"task_group": {"_group_id": null, "children": {
			"x": ["edgeinfo", "x"]}}}}`, wantErr: true},
		{name: "a child that is not a pair", doc: `{"dag": {"task_group": {"_group_id": null, "children": {
			"x": ["operator"]}}}}`, wantErr: true},
		{name: "an operator child without a task id string", doc: `{"dag": {"task_group": {"_group_id": null,
			"children": {"x": ["operator", 3]}}}}`, wantErr: true},
		{name: "a group id twice", doc: `{"dag": {"task_group": {"_group_id": null, "prefix_group_id": false,
			"children": {
				"a": ["taskgroup", {"_group_id": "a", "prefix_group_id": false, "children": {
					"g": ["taskgroup", {"_group_id": "g", "children": {}}]}}],
				"b": ["taskgroup", {"_group_id": "b", "prefix_group_id": false, "children": {
					"g": ["taskgroup", {"_group_id": "g", "children": {}}]}}]}}}}`, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := SerializedTaskGroups([]byte(c.doc))
			if c.wantErr {
				if err == nil {
					t.Fatalf("SerializedTaskGroups = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("SerializedTaskGroups = %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestTaskGroupsTaskIDs(t *testing.T) {
	g := TaskGroups{"group1": {"group1.a"}, "empty": nil}
	if ids, err := g.TaskIDs("group1"); err != nil || !reflect.DeepEqual(ids, []string{"group1.a"}) {
		t.Errorf("TaskIDs(group1) = %v, %v", ids, err)
	}
	if ids, err := g.TaskIDs("empty"); err != nil || len(ids) != 0 {
		t.Errorf("TaskIDs(empty) = %v, %v", ids, err)
	}
	if _, err := g.TaskIDs("missing"); !errors.Is(err, ErrNoTaskGroup) {
		t.Errorf("TaskIDs(missing) error %v, want ErrNoTaskGroup", err)
	}
	if _, err := TaskGroups(nil).TaskIDs("group1"); !errors.Is(err, ErrNoTaskGroup) {
		t.Errorf("nil TaskIDs error %v, want ErrNoTaskGroup", err)
	}
}

// A published DAG keeps its task groups for the embedded store's record;
// an invalid task_group is an invalid serialized DAG.
func TestParseSerializedDagTaskGroups(t *testing.T) {
	doc := func(group string) []byte {
		return []byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/x/a.py", "relative_fileloc": "a.py",
			"tasks": [{"__type": "operator", "__var": {"task_id": "group1.task1"}},
				{"__type": "operator", "__var": {"task_id": "task2"}}],
			"task_group": ` + group + `}}`)
	}
	d, err := ParseSerializedDag(doc(`{"_group_id": null, "prefix_group_id": true, "children": {
		"group1": ["taskgroup", {"_group_id": "group1", "prefix_group_id": true,
			"children": {"group1.task1": ["operator", "group1.task1"]}}],
		"task2": ["operator", "task2"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (TaskGroups{"group1": {"group1.task1"}}); !reflect.DeepEqual(d.TaskGroups, want) {
		t.Errorf("TaskGroups = %v, want %v", d.TaskGroups, want)
	}
	d, err = ParseSerializedDag(doc(`{"_group_id": null, "children": {"task2": ["operator", "task2"]}}`))
	if err != nil || d.TaskGroups != nil {
		t.Errorf("a DAG without groups: %v, %v", d.TaskGroups, err)
	}
	if _, err := ParseSerializedDag(doc(`{"_group_id": null, "children": {"x": ["weird", 1]}}`)); err == nil {
		t.Error("an invalid task_group accepted")
	}
}
