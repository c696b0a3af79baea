// IPVS / Checker: ipvs-checker's health checks, latency, certificates and
// the weights it sets.
local lib = import 'lib.libsonnet';

{
  grafanaDashboards+:: {
    'ipvs-checker.json': lib.dashboard($._config, {
      uid: 'ipvs-checker',
      title: 'IPVS / Checker',
      description: 'ipvs-checker: health checks of the real servers, their latency, health changes, certificates, and the weights it sets (annotations).',
      variables: [
        lib.queryVariable('instance', 'Checker', 'label_values(ipvs_checker_config_last_reload_successful, instance)'),
        lib.queryVariable('vip', 'VIP', 'label_values(ipvs_checker_backend_weight_configured{instance=~"$instance"}, local_address)', all=true, allByDefault=true),
      ],
      annotations: [
        lib.annotation('Weight changes', 'purple', 'sum by (proto, local_address, local_port, local_mark, remote_address, remote_port, cause) (increase(ipvs_checker_weight_changes_total{instance=~"$instance", local_address=~"$vip"}[$__rate_interval])) > 0', 'weight of {{remote_address}}:{{remote_port}} set ({{cause}})', 'VIP {{local_address}}:{{local_port}} {{local_mark}}', 'cause'),
        lib.annotation('Health changes', 'red', 'sum by (proto, local_address, local_port, local_mark, remote_address, remote_port) (changes(ipvs_checker_backend_up{instance=~"$instance", local_address=~"$vip"}[$__rate_interval])) > 0', '{{remote_address}}:{{remote_port}} health changed', 'VIP {{local_address}}:{{local_port}} {{local_mark}}', 'remote_address'),
      ],
      panels: [
        lib.stat(1, 'Real servers up', [0, 0, 6, 4], [
          lib.target('sum(ipvs_checker_backend_up{instance=~"$instance", local_address=~"$vip"})'),
        ]) + {
          description: 'Healthy real servers, all services.',
        },
        lib.stat(2, 'Real servers checked', [6, 0, 6, 4], [
          lib.target('count(ipvs_checker_backend_weight_configured{instance=~"$instance", local_address=~"$vip"})'),
        ]) + {
          description: 'Real servers in the configuration.',
        },
        lib.stat(3, 'Last reload', [12, 0, 6, 4], [
          lib.target('ipvs_checker_config_last_reload_successful{instance=~"$instance"}'),
        ]) + {
          description: 'Whether the last configuration reload succeeded (0: the previous configuration is still in force).',
          defaults:: { mappings: lib.mappings(['FAILED', 'red'], ['OK', 'green']) },
        },
        lib.stat(4, 'Configuration loaded', [18, 0, 6, 4], [
          lib.target('ipvs_checker_config_last_reload_success_timestamp_seconds{instance=~"$instance"} * 1000'),
        ]) + {
          description: 'When the configuration was last loaded successfully.',
          defaults:: { unit: 'dateTimeFromNow' },
        },
        lib.stateTimeline(5, 'Health', [0, 4, 12, 8], [
          lib.target('ipvs_checker_backend_up{instance=~"$instance", local_address=~"$vip"}', '{{local_address}}:{{local_port}} {{local_mark}} → {{remote_address}}:{{remote_port}}'),
        ]) + {
          description: '1 up, 0 down after rise/fall.',
          defaults:: { mappings: lib.mappings(['down', 'red'], ['up', 'green']) },
        },
        lib.timeseries(6, 'Probe success', [12, 4, 12, 8], [
          lib.target('ipvs_checker_probe_success{instance=~"$instance", local_address=~"$vip"}', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'Whether the last probe of each real server succeeded (before rise/fall).',
        },
        lib.timeseries(7, 'Probe latency by phase (p50, p90)', [0, 12, 12, 8], [
          lib.target('histogram_quantile(0.5, sum by (phase, le) (rate(ipvs_checker_probe_duration_seconds_bucket{instance=~"$instance", local_address=~"$vip"}[$__rate_interval])))', 'p50 {{phase}}'),
          lib.target('histogram_quantile(0.9, sum by (phase, le) (rate(ipvs_checker_probe_duration_seconds_bucket{instance=~"$instance", local_address=~"$vip"}[$__rate_interval])))', 'p90 {{phase}}'),
        ]) + {
          description: 'Probe time per phase (when the checker reports phases; otherwise the whole probe).',
          defaults:: { unit: 's' },
        },
        lib.timeseries(8, 'Probe latency per real server (p90)', [12, 12, 12, 8], [
          lib.target('histogram_quantile(0.9, sum by (remote_address, remote_port, le) (rate(ipvs_checker_probe_duration_seconds_bucket{instance=~"$instance", local_address=~"$vip"}[$__rate_interval])))', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: '90th percentile of the probe time of each real server.',
          defaults:: { unit: 's' },
        },
        lib.timeseries(9, 'Health transitions', [0, 20, 12, 8], [
          lib.target('sum by (remote_address, remote_port) (increase(ipvs_checker_transitions_total{instance=~"$instance", local_address=~"$vip"}[$__rate_interval]))', '{{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'Health changes per real server.',
        },
        lib.timeseries(10, 'Weights set, by cause', [12, 20, 12, 8], [
          lib.target('sum by (cause) (increase(ipvs_checker_weight_changes_total{instance=~"$instance", local_address=~"$vip"}[$__rate_interval]))', '{{cause}}'),
        ]) + {
          description: "Weights the checker set: health, quorum_guard (a failed server put back), out_of_band (someone else's change undone).",
        },
        lib.timeseries(11, 'Desired and configured weight', [0, 28, 12, 8], [
          lib.target('ipvs_checker_backend_weight_desired{instance=~"$instance", local_address=~"$vip"}', 'desired {{remote_address}}:{{remote_port}}'),
          lib.target('ipvs_checker_backend_weight_configured{instance=~"$instance", local_address=~"$vip"}', 'configured {{remote_address}}:{{remote_port}}'),
        ]) + {
          description: 'The weight the checker wants each real server to have, and its configured weight.',
        },
        lib.table(12, 'Certificate expiry', [12, 28, 12, 7], [
          lib.tableTarget('ipvs_checker_tls_cert_not_after_timestamp_seconds{instance=~"$instance", local_address=~"$vip"} - time()'),
        ]) + {
          description: "Time left on each HTTPS real server's certificate (from its last successful probe).",
          defaults:: {
            thresholds: {
              mode: 'absolute',
              steps: [
                { color: 'red', value: null },
                { color: 'orange', value: 0 },
                { color: 'green', value: 1209600 },
              ],
            },
          },
          transformations: [{ id: 'organize', options: { excludeByName: { Time: true, job: true } } }],
        },
        lib.table(13, 'Last failure', [0, 36, 12, 7], [
          lib.tableTarget('ipvs_checker_last_failure_info{instance=~"$instance", local_address=~"$vip"}'),
        ]) + {
          description: "The reason of each real server's last failed probe.",
          transformations: [
            {
              id: 'organize',
              options: { excludeByName: { Time: true, Value: true, __name__: true, job: true } },
            },
          ],
        },
        lib.stat(14, 'Quorum guard', [12, 36, 12, 4], [
          lib.target('sum(ipvs_checker_quorum_guard_active{instance=~"$instance", local_address=~"$vip"})'),
        ]) + {
          description: 'Services whose quorum guard keeps failed real servers at their weight.',
        },
        lib.timeseries(15, 'Netlink errors', [0, 43, 12, 4], [
          lib.target('sum by (op) (rate(ipvs_checker_netlink_errors_total{instance=~"$instance"}[$__rate_interval]))', '{{op}}'),
        ]) + {
          description: 'Failed IPVS netlink requests of the checker.',
        },
        lib.timeseries(16, 'Probes late (the checker behind)', [12, 40, 12, 7], [
          lib.target('sum by (instance) (rate(ipvs_checker_probes_late_total{instance=~"$instance"}[$__rate_interval]))', '{{instance}}'),
        ]) + {
          description: 'Probes a second that timed out while the checker itself was behind (short of CPU, or held up): held against no real server, but a failure among them is seen late. Alert: IPVSCheckerProbesLate.',
          defaults:: { unit: 'reqps' },
        },
        lib.timeseries(17, 'Pass over the table: interval', [0, 47, 12, 7], [
          lib.target('ipvs_checker_table_pass_interval_seconds{instance=~"$instance"}', 'interval {{instance}}'),
          lib.target('rate(ipvs_checker_table_pass_cpu_seconds_total{instance=~"$instance"}[$__rate_interval]) / rate(ipvs_checker_table_passes_total{instance=~"$instance"}[$__rate_interval])', 'CPU a pass {{instance}}'),
        ]) + {
          description: 'How long an out-of-band weight, a maintenance file or an expired drain waits to be followed: 1 s, longer where a pass over the table takes more than 50 ms of CPU (at most 5 s); and the CPU a pass takes.',
          defaults:: { unit: 's' },
        },
      ],
    }),
  },
}
