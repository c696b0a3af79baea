// Pieces of the alerts' annotations (Prometheus templates) that name what
// an alert is about, the same way in every alert.
{
  // The virtual service: VIP:port, or the fwmark of a firewall-mark service.
  vip: '{{ if $labels.local_mark }}fwmark {{ $labels.local_mark }}{{ else }}{{ $labels.local_address }}:{{ $labels.local_port }}{{ end }}',
  // The real server.
  rip: '{{ $labels.remote_address }}:{{ $labels.remote_port }}',
  // The network namespace, when the exporter watches one (--netns).
  netns: '{{ if $labels.netns }} (netns {{ $labels.netns }}){{ end }}',
}
