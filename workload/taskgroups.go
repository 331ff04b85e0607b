package workload

import (
	"encoding/json"
	"fmt"
	"slices"
)

// The task groups of a serialized DAG, as the task-instance queries read
// them (Airflow's _get_group_tasks: dag.task_group_dict[group_id].iter_tasks()).

// TaskGroups are a DAG's task groups by group id (the id Airflow's
// task_group_dict keys them by: prefixed with the parent's id when the
// parent prefixes its children), each with the ids of every task in it or
// in a group nested in it, sorted. The root group, which has no id, is not
// among them.
type TaskGroups map[string][]string

// TaskIDs returns the task ids of groupID, or ErrNoTaskGroup.
func (g TaskGroups) TaskIDs(groupID string) ([]string, error) {
	ids, ok := g[groupID]
	if !ok {
		return nil, fmt.Errorf("workload: task group %q: %w", groupID, ErrNoTaskGroup)
	}
	return ids, nil
}

// serializedTaskGroup is TaskGroupSerialization.serialize_task_group's
// object, as far as the groups' ids and members go: children maps a label
// to ["operator", task_id] or ["taskgroup", {group}].
type serializedTaskGroup struct {
	GroupID       *string                      `json:"_group_id"`
	PrefixGroupID *bool                        `json:"prefix_group_id"`
	Children      map[string][]json.RawMessage `json:"children"`
}

// SerializedTaskGroups reads the task groups of a serialized DAG document
// ({"dag": {"task_group": {…}}}); a DAG without a task_group (Airflow then
// makes a root group alone) has none.
func SerializedTaskGroups(doc []byte) (TaskGroups, error) {
	var top struct {
		Dag struct {
			TaskGroup json.RawMessage `json:"task_group"`
		} `json:"dag"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("workload: serialized dag: %w", err)
	}
	groups, err := parseTaskGroups(top.Dag.TaskGroup)
	if err != nil {
		return nil, fmt.Errorf("workload: serialized dag: task_group: %w", err)
	}
	return groups, nil
}

// parseTaskGroups reads a serialized root task group (null or absent: no
// groups).
func parseTaskGroups(raw json.RawMessage) (TaskGroups, error) {
	out := TaskGroups{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if _, err := walkTaskGroup(raw, "", false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// walkTaskGroup records the group raw (its parent's id parentID, which
// prefixes its children when parentPrefixes) and its nested groups in out,
// and returns the ids of the tasks under it.
func walkTaskGroup(raw json.RawMessage, parentID string, parentPrefixes bool, out TaskGroups) ([]string, error) {
	var g serializedTaskGroup
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	// SerializedTaskGroup.group_id: the parent's child_id of _group_id
	// when the parent has an id and prefixes its children.
	id := ""
	if g.GroupID != nil {
		id = *g.GroupID
	}
	if id != "" && parentID != "" && parentPrefixes {
		id = parentID + "." + id
	}
	prefixes := g.PrefixGroupID == nil || *g.PrefixGroupID
	var tasks []string
	for label, child := range g.Children {
		if len(child) != 2 {
			return nil, fmt.Errorf("child %q: want [type, value], got %d items", label, len(child))
		}
		var typ string
		if err := json.Unmarshal(child[0], &typ); err != nil {
			return nil, fmt.Errorf("child %q: type: %w", label, err)
		}
		switch typ {
		case "operator":
			var taskID string
			if err := json.Unmarshal(child[1], &taskID); err != nil {
				return nil, fmt.Errorf("child %q: task id: %w", label, err)
			}
			tasks = append(tasks, taskID)
		case "taskgroup":
			nested, err := walkTaskGroup(child[1], id, prefixes, out)
			if err != nil {
				return nil, fmt.Errorf("child %q: %w", label, err)
			}
			tasks = append(tasks, nested...)
		default:
			return nil, fmt.Errorf("child %q: type %q is neither operator nor taskgroup", label, typ)
		}
	}
	slices.Sort(tasks)
	tasks = slices.Compact(tasks)
	if id != "" {
		if _, dup := out[id]; dup {
			// The Task SDK refuses a DAG with one group id twice.
			return nil, fmt.Errorf("group id %q twice", id)
		}
		out[id] = tasks
	}
	return tasks, nil
}
