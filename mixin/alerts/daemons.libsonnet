local t = import 'templates.libsonnet';

// The daemons themselves: scraped, known to Prometheus, IPVS answering,
// the checker's configuration loaded, its probes on time.
{
  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ipvs-daemons',
        rules: [
          {
            alert: 'IPVSExporterDown',
            expr: 'up{%(exporterSelector)s} == 0' % $._config,
            'for': '2m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'ipvs-exporter on {{ $labels.instance }} cannot be scraped',
              description: 'Prometheus has failed to scrape ipvs-exporter at {{ $labels.instance }} for 2 minutes: no IPVS metrics (VIPs, real servers, traffic) from this director.',
            },
          },
          {
            alert: 'IPVSExporterAbsent',
            expr: 'absent(up{%(exporterSelector)s})' % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No ipvs-exporter target is known to Prometheus',
              description: 'There is no scrape target with %(exporterSelector)s at all: service discovery or the scrape config lost it, so no VIP or real server of any director is watched.' % $._config,
            },
          },
          {
            alert: 'IPVSCheckerDown',
            expr: 'up{%(checkerSelector)s} == 0' % $._config,
            'for': '2m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'ipvs-checker on {{ $labels.instance }} cannot be scraped',
              description: "Prometheus has failed to scrape ipvs-checker at {{ $labels.instance }} for 2 minutes: if the daemon is dead, no real server's weight follows its health on this director any more.",
            },
          },
          {
            alert: 'IPVSCheckerAbsent',
            expr: 'absent(up{%(checkerSelector)s})' % $._config,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No ipvs-checker target is known to Prometheus',
              description: "There is no scrape target with %(checkerSelector)s at all: nobody watches the real servers' health checks." % $._config,
            },
          },
          {
            alert: 'IPVSUnavailable',
            expr: 'ipvs_up == 0',
            'for': '1m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'IPVS is not available on {{ $labels.instance }}',
              description: 'ipvs-exporter at {{ $labels.instance }}' + t.netns + " gets no answer from the kernel's IPVS: the ip_vs module is not loaded or the exporter lacks CAP_NET_ADMIN. No VIP is being balanced, or none can be seen.",
            },
          },
          {
            alert: 'IPVSCheckerConfigReloadFailed',
            expr: 'ipvs_checker_config_last_reload_successful == 0',
            'for': '1m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ipvs-checker on {{ $labels.instance }} rejected its new configuration',
              description: 'The last configuration reload (SIGHUP) of ipvs-checker at {{ $labels.instance }} failed; it still runs the previous configuration, so the VIPs and real servers you just changed are not checked as you intended.',
            },
          },
          {
            alert: 'IPVSCheckerProbesLate',
            expr: |||
              sum without (proto, local_address, local_port, local_mark, remote_address, remote_port)
                (increase(ipvs_checker_probes_late_total[10m])) >= %(checkerLateProbes)s
            ||| % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ipvs-checker on {{ $labels.instance }} is short of CPU: its probes are late',
              description: 'ipvs-checker at {{ $labels.instance }} has had %(checkerLateProbes)s or more probes in 10 minutes time out while it was itself behind (short of CPU, or held up). It holds no such timeout against a real server, so none is drained for it, but a real failure among those probes is seen later than interval x fall.' % $._config,
            },
          },
        ],
      },
    ],
  },
}
