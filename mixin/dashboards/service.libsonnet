// IPVS / Service: one virtual service and its real servers.
local lib = import 'lib.libsonnet';

{
  grafanaDashboards+:: {
    'ipvs-service.json': lib.dashboard($._config, {
      uid: 'ipvs-service',
      title: 'IPVS / Service',
      description: 'One virtual service and its real servers: pick the VIP and port (a firewall-mark service: VIP All, port All, its mark).',
      variables: [
        lib.queryVariable('instance', 'Exporter', 'label_values(ipvs_up, instance)'),
        lib.queryVariable('vip', 'VIP', 'label_values(ipvs_service_info{instance=~"$instance"}, local_address)', all=true),
        lib.queryVariable('port', 'Port', 'label_values(ipvs_service_info{instance=~"$instance", local_address=~"$vip"}, local_port)', all=true, allByDefault=true),
        lib.queryVariable('mark', 'Fwmark', 'label_values(ipvs_service_info{instance=~"$instance", proto="FWM"}, local_mark)', all=true, allByDefault=true),
        lib.queryVariable('checker', 'Checker', 'label_values(ipvs_checker_config_last_reload_successful, instance)', all=true, allByDefault=true),
      ],
      annotations: [
        lib.annotation('Weight changes', 'orange', 'changes(ipvs_backend_weight{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval]) > 0', 'weight of {{remote_address}}:{{remote_port}} changed', 'now {{value}}', 'remote_address'),
      ],
      panels: [
        lib.table(1, 'Service settings', [0, 0, 24, 4], [
          lib.tableTarget('ipvs_service_info{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}'),
        ]) + {
          description: 'Scheduler, flags, persistence of the selected service(s).',
          transformations: [
            {
              id: 'organize',
              options: { excludeByName: { Time: true, Value: true, __name__: true, job: true } },
            },
          ],
        },
        lib.table(2, 'Real servers', [0, 4, 24, 7], [
          lib.tableTarget('max by (proto, local_address, local_port, local_mark, remote_address, remote_port) (ipvs_backend_weight{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', 'weight'),
          lib.tableTarget('max by (proto, local_address, local_port, local_mark, remote_address, remote_port) (ipvs_checker_backend_up{instance=~"$checker", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', 'up'),
          lib.tableTarget('max by (proto, local_address, local_port, local_mark, remote_address, remote_port) (ipvs_backend_connections_active{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', 'active'),
          lib.tableTarget('max by (proto, local_address, local_port, local_mark, remote_address, remote_port) (ipvs_backend_connections_inactive{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', 'inactive'),
        ]) + {
          description: 'Each real server: weight in the table, health from the checker, connections, forwarding method.',
          transformations: [
            { id: 'merge', options: {} },
            {
              id: 'organize',
              options: {
                excludeByName: { Time: true },
                renameByName: {
                  'Value #A': 'weight',
                  'Value #B': 'healthy',
                  'Value #C': 'active',
                  'Value #D': 'inactive',
                },
              },
            },
          ],
        },
        lib.timeseries(3, 'Weight', [0, 11, 12, 8], [
          lib.target('ipvs_backend_weight{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'Weight of each real server in the table (0: no new connections).',
        },
        lib.stateTimeline(4, 'Health (checker)', [12, 11, 12, 8], [
          lib.target('ipvs_checker_backend_up{instance=~"$checker", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: '1 up, 0 down, as the checker decides after rise/fall.',
          defaults:: { mappings: lib.mappings(['down', 'red'], ['up', 'green']) },
        },
        lib.timeseries(5, 'Active connections', [0, 19, 12, 8], [
          lib.target('ipvs_backend_connections_active{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'Established connections per real server, as the kernel counts them.',
        },
        lib.timeseries(6, 'Inactive connections', [12, 19, 12, 8], [
          lib.target('ipvs_backend_connections_inactive{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'Connections in any other state per real server, as the kernel counts them.',
        },
        lib.piechart(7, 'Traffic share (bytes in, time range)', [0, 27, 8, 8], [
          lib.target('sum by (remote_address, remote_port) (increase(ipvs_backend_incoming_bytes_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__range]))', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: "Each real server's share of the bytes clients sent over the dashboard's time range.",
          options: {
            reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
            legend: { displayMode: 'table', placement: 'right', values: ['percent'] },
            pieType: 'donut',
          },
        },
        lib.timeseries(8, 'Connection share', [8, 27, 16, 8], [
          lib.target('sum by (remote_address, remote_port) (rate(ipvs_backend_connections_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval])) / scalar(sum(rate(ipvs_backend_connections_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval])))', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: "Each real server's share of the service's new connections.",
          defaults:: { unit: 'percentunit' },
        },
        lib.timeseries(9, 'Connection states', [0, 35, 12, 8], [
          lib.target('sum by (proto, state) (ipvs_backend_connection_states{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', '{{proto}} {{state}}'),
        ]) + {
          description: 'Connections in the connection table per TCP/UDP/SCTP state (persistence templates excluded).',
          defaults:: { custom: { stacking: { mode: 'normal', group: 'A' }, fillOpacity: 30 } },
        },
        lib.timeseries(10, 'Persistence templates', [12, 35, 12, 8], [
          lib.target('sum by (remote_address, remote_port, state) (ipvs_backend_persistence_templates{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"})', '{{remote_address}}:{{remote_port}} {{state}}'),
        ]) + {
          description: 'Persistence templates per real server and state: clients pinned to it.',
        },
        lib.timeseries(11, 'Traffic in / out (bits/s)', [0, 43, 12, 8], [
          lib.target('sum(rate(ipvs_service_incoming_bytes_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval])) * 8', 'in'),
          lib.target('sum(rate(ipvs_service_outgoing_bytes_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval])) * 8', 'out'),
        ]) + {
          description: 'Bytes of the selected service(s); out only for LVS-NAT.',
          defaults:: { unit: 'bps' },
        },
        lib.timeseries(12, 'Connections per second per real server', [12, 43, 12, 8], [
          lib.target('rate(ipvs_backend_connections_total{instance=~"$instance", local_address=~"$vip", local_port=~"$port", local_mark=~"$mark"}[$__rate_interval])', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'New connections scheduled to each real server.',
          defaults:: { unit: 'cps' },
        },
      ],
    }),
  },
}
