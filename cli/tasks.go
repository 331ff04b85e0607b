package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/workload"
)

const usageTasks = "tasks list [--dag-id D] [--run-id R] [--state S] | mark DAG_ID RUN_ID TASK_ID [--map-index N] --state failed|success|skipped  [--server URL]"

const taskHeader = "DAG_ID\tRUN_ID\tTASK_ID\tMAP_INDEX\tTRY\tSTATE\tSTART\tEND\tID"

func taskRows(tis []workload.TaskInstance) [][]string {
	rows := make([][]string, 0, len(tis))
	for _, ti := range tis {
		rows = append(rows, []string{ti.DagID, ti.RunID, ti.TaskID, strconv.Itoa(ti.MapIndex),
			strconv.Itoa(ti.TryNumber), string(ti.State), formatTime(ti.StartDate), formatTime(ti.EndDate), ti.ID})
	}
	return rows
}

// tasksCommand is `taskgate tasks list|mark`.
func (e *cliEnv) tasksCommand() *cobra.Command {
	cmd := groupCommand("tasks", "List and mark task instances", func() error { return usagef("usage: taskgate %s", usageTasks) })

	list := &cobra.Command{
		Use:   "list",
		Short: "Print task instances",
		Args:  exactArgs(0, "tasks list [--dag-id D] [--run-id R] [--state S]"),
	}
	listServer := serverFlag(list)
	var f workload.TaskInstanceFilter
	list.Flags().StringVar(&f.DagID, "dag-id", "", "only this dag")
	list.Flags().StringVar(&f.RunID, "run-id", "", "only this dag run")
	state := list.Flags().String("state", "", "only task instances in this state")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		f.State = workload.State(*state)
		return e.withBackend(*listServer, func(b operatorBackend) error {
			tis, _, err := b.TaskInstances(cmd.Context(), f)
			if err != nil {
				return err
			}
			return table(e.stdout, taskHeader, taskRows(tis))
		})
	}

	const usageMark = "tasks mark DAG_ID RUN_ID TASK_ID [--map-index N] --state failed|success|skipped"
	mark := &cobra.Command{
		Use:   "mark DAG_ID RUN_ID TASK_ID --state failed|success|skipped",
		Short: "Set a task instance's state; a running task is told to stop at its next heartbeat",
		Args:  exactArgs(3, usageMark),
	}
	markServer := serverFlag(mark)
	mapIndex := mark.Flags().Int("map-index", -1, "map index (-1 for an unmapped task)")
	newState := mark.Flags().String("state", "", "failed, success or skipped (required)")
	mark.RunE = func(cmd *cobra.Command, args []string) error {
		s := workload.State(*newState)
		switch s {
		case workload.StateFailed, workload.StateSuccess, workload.StateSkipped:
		default:
			return usagef("usage: taskgate %s", usageMark)
		}
		if *mapIndex < -1 {
			return usagef("tasks mark: --map-index must be -1 or more")
		}
		return e.withBackend(*markServer, func(b operatorBackend) error {
			ti, err := b.MarkTaskInstance(cmd.Context(), args[0], args[1], args[2], *mapIndex, s)
			if err != nil {
				return notFound(err, "task instance %s/%s/%s (map index %d)", args[0], args[1], args[2], *mapIndex)
			}
			return table(e.stdout, taskHeader, taskRows([]workload.TaskInstance{*ti}))
		})
	}

	cmd.AddCommand(list, mark)
	return cmd
}
