// The director's own IPVS state (the exporter's director collector) and
// the daemons' restarts. No rule needs a per-node setting: the sync
// daemons and the timeouts of a director are compared with the other
// directors of its job (every ipvs-exporter target of one job is taken to
// be one fleet, an HA pair the smallest).
local t = import 'templates.libsonnet';

{
  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ipvs-director',
        rules: [
          {
            alert: 'IPVSSyncDaemonStopped',
            expr: |||
              sum without (state) (ipvs_sync_daemon_running) == 0
              and on (job)
              max by (job) (ipvs_sync_daemon_running) == 1
            |||,
            'for': '2m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'No connection-sync daemon runs on {{ $labels.instance }}' + t.netns,
              description: 'Another director of job {{ $labels.job }} runs an IPVS sync daemon, but {{ $labels.instance }}' + t.netns + ' runs neither a master nor a backup: a failover between them drops every established connection through the VIPs.',
            },
          },
          {
            alert: 'IPVSSyncDaemonUnpaired',
            expr: |||
              (
                label_replace(max by (job) (ipvs_sync_daemon_running{state="master"}) == 1, "missing", "backup", "", "")
                unless on (job)
                max by (job) (ipvs_sync_daemon_running{state="backup"}) == 1
              )
              or
              (
                label_replace(max by (job) (ipvs_sync_daemon_running{state="backup"}) == 1, "missing", "master", "", "")
                unless on (job)
                max by (job) (ipvs_sync_daemon_running{state="master"}) == 1
              )
            |||,
            'for': '2m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The directors of job {{ $labels.job }} have no {{ $labels.missing }} sync daemon',
              description: 'Directors of job {{ $labels.job }} run IPVS sync daemons, but none runs a {{ $labels.missing }}: {{ if eq $labels.missing "backup" }}no director takes the connection table in, so a failover drops the established connections{{ else }}no director sends its connection table, so the backups\' copies go stale{{ end }}.',
            },
          },
          {
            alert: 'IPVSDropDefenseActive',
            expr: 'ipvs_drop_defense_active == 1',
            'for': '1m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IPVS defence {{ $labels.defense }} is dropping on {{ $labels.instance }}' + t.netns,
              description: "The kernel's IPVS drop defence {{ $labels.defense }} acts on {{ $labels.instance }}" + t.netns + ': free memory is below net.ipv4.vs.amemthresh (the sysctl is 2), or it is set to always act (3). Connections or packets through the VIPs are being dropped on purpose.',
            },
          },
          {
            alert: 'IPVSTimeoutDiffersFromFleet',
            expr: |||
              ipvs_timeout_seconds
              != on (job, protocol) group_left ()
              quantile by (job, protocol) (0.5, ipvs_timeout_seconds)
            |||,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'IPVS {{ $labels.protocol }} timeout on {{ $labels.instance }}' + t.netns + " differs from the fleet's",
              description: 'The IPVS {{ $labels.protocol }} connection timeout on {{ $labels.instance }}' + t.netns + ' is {{ $value | humanizeDuration }}, not the median of the directors of job {{ $labels.job }}: long-lived connections behave differently after a failover, or are cut early.',
            },
          },
          {
            alert: 'IPVSDaemonRestarting',
            expr: |||
              changes(process_start_time_seconds{%(daemonsSelector)s}[15m]) >= %(daemonRestarts)s
            ||| % $._config,
            'for': '0m',
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.job }} on {{ $labels.instance }} keeps restarting',
              description: '{{ $labels.job }} at {{ $labels.instance }} has restarted {{ $value | printf "%%.0f" }} times in 15 minutes (process_start_time_seconds changed): it crashes or is killed, and between its starts nothing watches{{ if eq $labels.job "%(checkerJobName)s" }} the real servers\' health{{ else }} this director\'s IPVS{{ end }}.' % $._config,
            },
          },
        ],
      },
    ],
  },
}
