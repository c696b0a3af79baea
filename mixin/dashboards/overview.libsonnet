// IPVS / Overview: every virtual service of one director (ipvs-exporter),
// with the real servers the checker beside it finds healthy.
local lib = import 'lib.libsonnet';

{
  grafanaDashboards+:: {
    'ipvs-overview.json': lib.dashboard($._config, {
      uid: 'ipvs-overview',
      title: 'IPVS / Overview',
      description: 'Every virtual service of one director (ipvs-exporter), with the real servers the checker finds healthy (ipvs-checker).',
      variables: [
        lib.queryVariable('instance', 'Exporter', 'label_values(ipvs_up, instance)'),
        lib.queryVariable('checker', 'Checker', 'label_values(ipvs_checker_config_last_reload_successful, instance)', all=true, allByDefault=true),
      ],
      panels: [
        lib.stat(1, 'IPVS up', [0, 0, 4, 4], [
          lib.target('min(ipvs_up{instance=~"$instance"})'),
        ]) + {
          description: "Whether the kernel's IPVS answers the exporter (0: module missing or no CAP_NET_ADMIN).",
          defaults:: { mappings: lib.mappings(['DOWN', 'red'], ['UP', 'green']) },
        },
        lib.stat(2, 'Virtual services', [4, 0, 4, 4], [
          lib.target('count(ipvs_service_info{instance=~"$instance"})'),
        ]) + {
          description: 'Services in the IPVS table.',
        },
        lib.stat(3, 'Real servers', [8, 0, 4, 4], [
          lib.target('count(ipvs_backend_weight{instance=~"$instance"})'),
        ]) + {
          description: 'Real servers in the IPVS table, all services.',
        },
        lib.stat(4, 'Real servers healthy', [12, 0, 4, 4], [
          lib.target('sum(ipvs_checker_backend_up{instance=~"$checker"})'),
        ]) + {
          description: 'Real servers the checker finds up.',
        },
        lib.stat(5, 'Connections / s', [16, 0, 4, 4], [
          lib.target('sum(rate(ipvs_connections_total{instance=~"$instance"}[$__rate_interval]))'),
        ]) + {
          description: 'New connections scheduled by IPVS, all services.',
          defaults:: { unit: 'cps' },
        },
        lib.stat(6, 'Active connections', [20, 0, 4, 4], [
          lib.target('sum(ipvs_backend_connections_active{instance=~"$instance"})'),
        ]) + {
          description: 'Established connections, all real servers.',
        },
        lib.table(7, 'Virtual services: configured, weighted and healthy real servers', [0, 4, 24, 7], [
          lib.tableTarget('count by (proto, local_address, local_port, local_mark) (ipvs_backend_weight{instance=~"$instance"})', 'configured'),
          lib.tableTarget('count by (proto, local_address, local_port, local_mark) (ipvs_backend_weight{instance=~"$instance"} > 0)', 'weighted'),
          lib.tableTarget('sum by (proto, local_address, local_port, local_mark) (ipvs_checker_backend_up{instance=~"$checker"})', 'healthy'),
          lib.tableTarget('max by (proto, local_address, local_port, local_mark, scheduler, flags, persistence_timeout) (ipvs_service_info{instance=~"$instance"})', 'settings'),
        ]) + {
          description: 'Per service: real servers in the table, those with weight above 0 (IPVS schedules to them), and those the checker finds healthy.',
          transformations: [
            { id: 'merge', options: {} },
            {
              id: 'organize',
              options: {
                excludeByName: { Time: true, 'Value #D': true },
                renameByName: { 'Value #A': 'configured', 'Value #B': 'weighted', 'Value #C': 'healthy' },
              },
            },
          ],
        },
        lib.timeseries(8, 'Traffic in (bits/s)', [0, 11, 12, 8], [
          lib.target('sum by (proto, local_address, local_port, local_mark) (rate(ipvs_service_incoming_bytes_total{instance=~"$instance"}[$__rate_interval])) * 8', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
        ]) + {
          description: 'Bytes from clients to each virtual service.',
          defaults:: { unit: 'bps' },
        },
        lib.timeseries(9, 'Traffic out (bits/s)', [12, 11, 12, 8], [
          lib.target('sum by (proto, local_address, local_port, local_mark) (rate(ipvs_service_outgoing_bytes_total{instance=~"$instance"}[$__rate_interval])) * 8', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
        ]) + {
          description: 'Bytes from each virtual service to clients; only LVS-NAT replies pass the director (DR and TUN reply directly).',
          defaults:: { unit: 'bps' },
        },
        lib.timeseries(10, 'Connections per second', [0, 19, 12, 8], [
          lib.target('sum by (proto, local_address, local_port, local_mark) (rate(ipvs_service_connections_total{instance=~"$instance"}[$__rate_interval]))', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
        ]) + {
          description: 'New connections scheduled by each virtual service.',
          defaults:: { unit: 'cps' },
        },
        lib.timeseries(11, 'Packets per second', [12, 19, 12, 8], [
          lib.target('sum(rate(ipvs_incoming_packets_total{instance=~"$instance"}[$__rate_interval]))', 'in'),
          lib.target('sum(rate(ipvs_outgoing_packets_total{instance=~"$instance"}[$__rate_interval]))', 'out'),
        ]) + {
          description: 'Packets in and out, all services (/proc/net/ip_vs_stats).',
          defaults:: { unit: 'pps' },
        },
        lib.timeseries(12, 'Active connections per service', [0, 27, 12, 8], [
          lib.target('sum by (proto, local_address, local_port, local_mark) (ipvs_backend_connections_active{instance=~"$instance"})', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
        ]) + {
          description: "Established connections of each virtual service's real servers.",
        },
        lib.timeseries(13, 'Healthy vs configured real servers', [12, 27, 12, 8], [
          lib.target('count by (proto, local_address, local_port, local_mark) (ipvs_backend_weight{instance=~"$instance"})', 'configured {{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
          lib.target('sum by (proto, local_address, local_port, local_mark) (ipvs_checker_backend_up{instance=~"$checker"})', 'healthy {{proto}} {{local_address}}:{{local_port}} {{local_mark}}'),
        ]) + {
          description: 'Per service: real servers in the table and those the checker finds healthy.',
        },
        lib.timeseries(14, 'Exporter collection time', [0, 35, 12, 6], [
          lib.target('ipvs_scrape_collector_duration_seconds{instance=~"$instance"}', '{{collector}}'),
        ]) + {
          description: 'How long each collector of the exporter took.',
          defaults:: { unit: 's' },
        },
        lib.stateTimeline(15, 'Exporter collectors', [12, 35, 12, 6], [
          lib.target('ipvs_scrape_collector_success{instance=~"$instance"}', '{{collector}}'),
        ]) + {
          description: 'Whether each collector of the exporter succeeded (a failed one leaves its metrics out).',
          defaults:: { mappings: lib.mappings(['failed', 'red'], ['ok', 'green']) },
        },
        lib.stateTimeline(16, 'Director: sync daemons', [0, 41, 8, 6], [
          lib.target('ipvs_sync_daemon_running{instance=~"$instance"}', '{{instance}} {{netns}} {{state}}'),
        ]) + {
          description: 'Whether the connection-sync daemon runs, per state (ipvsadm -L --daemon); ipvs_sync_daemon_info has its interface and sync id.',
          defaults:: { mappings: lib.mappings(['stopped', 'text'], ['running', 'green']) },
          options: {
            showValue: 'never',
            mergeValues: true,
            legend: { displayMode: 'list', placement: 'bottom' },
          },
        },
        lib.stateTimeline(17, 'Director: drop defences', [8, 41, 8, 6], [
          lib.target('ipvs_drop_defense_active{instance=~"$instance"}', '{{instance}} {{netns}} {{defense}}'),
        ]) + {
          description: "Whether a drop defence of the kernel's IPVS acts (its sysctl at 2, automatic with memory short, or 3, always).",
          defaults:: { mappings: lib.mappings(['idle', 'green'], ['dropping', 'red']) },
          options: {
            showValue: 'never',
            mergeValues: true,
            legend: { displayMode: 'list', placement: 'bottom' },
          },
        },
        lib.timeseries(18, 'Director: IPVS timeouts', [16, 41, 8, 6], [
          lib.target('ipvs_timeout_seconds{instance=~"$instance"}', '{{instance}} {{netns}} {{protocol}}'),
        ]) + {
          description: 'The connection timeouts by protocol state (ipvsadm -L --timeout).',
          defaults:: { unit: 's' },
        },
        lib.timeseries(19, 'Director: kernel rate estimates', [0, 47, 12, 8], [
          lib.target('topk(10, ipvs_service_connections_per_second{instance=~"$instance"})', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}} CPS'),
          lib.target('topk(10, ipvs_service_incoming_packets_per_second{instance=~"$instance"})', '{{proto}} {{local_address}}:{{local_port}} {{local_mark}} InPPS'),
        ]) + {
          description: "The kernel's own estimates per virtual service (ipvsadm -Ln --rate; exported with --collector.services.rates): connections and incoming packets per second.",
        },
        lib.timeseries(20, "Director: daemons' CPU", [12, 47, 6, 8], [
          lib.target('rate(process_cpu_seconds_total{%(daemonsSelector)s,instance=~"$instance|$checker"}[$__rate_interval])' % $._config, '{{job}} {{instance}}'),
        ]) + {
          description: 'CPU time of ipvs-exporter and ipvs-checker (process_cpu_seconds_total), in cores.',
          defaults:: { unit: 'percentunit' },
        },
        lib.timeseries(21, "Director: daemons' memory", [18, 47, 6, 8], [
          lib.target('process_resident_memory_bytes{%(daemonsSelector)s,instance=~"$instance|$checker"}' % $._config, '{{job}} {{instance}}'),
        ]) + {
          description: 'Resident memory of ipvs-exporter and ipvs-checker.',
          defaults:: { unit: 'bytes' },
        },
      ],
    }),
  },
}
