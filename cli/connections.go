package cli

import (
	"encoding/json"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/workload"
)

const usageConnections = "connections add ID --conn-type T [--host H] [--port N] [--login L] [--password P] [--schema S] [--extra JSON] | get ID | list | delete ID  [--server URL] | rotate-key"

const usageRotateKey = "connections rotate-key"

// connectionView is how a connection is printed: the admin API's shape,
// password redacted.
type connectionView struct {
	ConnectionID string  `json:"connection_id"`
	ConnType     string  `json:"conn_type"`
	Host         *string `json:"host"`
	Port         *int    `json:"port"`
	Login        *string `json:"login"`
	Password     *string `json:"password"`
	Schema       *string `json:"schema"`
	Extra        *string `json:"extra"`
}

// connectionsCommand is `taskgate connections add|get|list|delete|rotate-key`.
func (e *cliEnv) connectionsCommand() *cobra.Command {
	cmd := groupCommand("connections", "Manage connections", func() error { return usagef("usage: taskgate %s", usageConnections) })

	const usageAdd = "connections add ID --conn-type T [--host --port --login --password --schema --extra JSON]"
	add := &cobra.Command{
		Use:   "add ID --conn-type T",
		Short: "Create or replace a connection",
		Args:  exactArgs(1, usageAdd),
	}
	addServer := serverFlag(add)
	var f connectionFlags
	add.Flags().StringVar(&f.connType, "conn-type", "", "connection type (required)")
	add.Flags().StringVar(&f.host, "host", "", "host")
	add.Flags().StringVar(&f.port, "port", "", "port, 0..65535")
	add.Flags().StringVar(&f.login, "login", "", "login")
	add.Flags().StringVar(&f.password, "password", "", "password (stored encrypted)")
	add.Flags().StringVar(&f.schema, "schema", "", "schema")
	add.Flags().StringVar(&f.extra, "extra", "", "extra, a JSON document (stored encrypted)")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		if f.connType == "" {
			return usagef("usage: taskgate %s", usageAdd)
		}
		c, err := f.connection(args[0])
		if err != nil {
			return err
		}
		return e.withBackend(*addServer, func(b operatorBackend) error { return b.PutConnection(cmd.Context(), c) })
	}

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Print a connection as JSON, password redacted",
		Args:  exactArgs(1, "connections get ID"),
	}
	getServer := serverFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*getServer, func(b operatorBackend) error {
			c, err := b.Connection(cmd.Context(), args[0])
			if err != nil {
				return notFound(err, "connection %q", args[0])
			}
			return writeJSON(e.stdout, connectionView{ConnectionID: c.ConnID, ConnType: c.ConnType, Host: c.Host,
				Port: c.Port, Login: c.Login, Password: c.Password, Schema: c.Schema, Extra: c.Extra})
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "Print every connection, without secrets",
		Args:  exactArgs(0, "connections list"),
	}
	listServer := serverFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return e.withBackend(*listServer, func(b operatorBackend) error {
			cs, err := b.Connections(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(cs))
			for _, c := range cs {
				port := "-"
				if c.Port != nil {
					port = strconv.Itoa(*c.Port)
				}
				rows = append(rows, []string{c.ConnID, c.ConnType, optional(c.Host), port, optional(c.Login), optional(c.Schema)})
			}
			return table(e.stdout, "CONN_ID\tCONN_TYPE\tHOST\tPORT\tLOGIN\tSCHEMA", rows)
		})
	}

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a connection",
		Args:  exactArgs(1, "connections delete ID"),
	}
	delServer := serverFlag(del)
	del.RunE = func(cmd *cobra.Command, args []string) error {
		return e.withBackend(*delServer, func(b operatorBackend) error {
			return notFound(b.DeleteConnection(cmd.Context(), args[0]), "connection %q", args[0])
		})
	}

	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-encrypt every connection with the first [core] fernet_key (data directory only)",
		Long: "Re-encrypt every connection's password and extra with the first configured key, as\n" +
			"`airflow rotate-fernet-key` does. It works on the data directory only: stop the server first.\n" +
			"To rotate: set [core] fernet_key to \"NEW,OLD\" (OLD being the current key, or the content of\n" +
			"<data_dir>/fernet_key), run this, then set it to \"NEW\" alone.",
		Args: exactArgs(0, usageRotateKey),
	}
	rotateServer := serverFlag(rotate)
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		if *rotateServer != "" {
			return usagef("connections rotate-key works on the data directory; stop the server and run it without --server")
		}
		return e.rotateConnectionKey(cmd.Context())
	}

	cmd.AddCommand(add, get, list, del, rotate)
	return cmd
}

// connectionFlags are the flags of `connections add`.
type connectionFlags struct {
	connType, host, port, login, password, schema, extra string
}

// connection checks the flags and builds the connection id.
func (f connectionFlags) connection(id string) (workload.Connection, error) {
	c := workload.Connection{ConnID: id, ConnType: f.connType}
	set := func(v string) *string {
		if v != "" {
			return &v
		}
		return nil
	}
	c.Host, c.Login, c.Password, c.Schema, c.Extra = set(f.host), set(f.login), set(f.password), set(f.schema), set(f.extra)
	if c.Extra != nil && !json.Valid([]byte(*c.Extra)) {
		return c, usagef("connections add: --extra must be JSON")
	}
	if f.port != "" {
		n, err := strconv.Atoi(f.port)
		if err != nil || n < 0 || n > 65535 {
			return c, usagef("connections add: --port must be 0..65535")
		}
		c.Port = &n
	}
	return c, nil
}
