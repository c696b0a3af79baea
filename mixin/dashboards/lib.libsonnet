// Plain-jsonnet builders of the Grafana JSON model the dashboards share
// (no grafonnet: Debian does not package it, and these few shapes are all
// the dashboards use). Every panel, query, variable and annotation reads
// from the dashboard's `datasource` variable.
{
  datasource: { type: 'prometheus', uid: '${datasource}' },

  // A query drawn over the time range. refId is set by the panel.
  target(expr, legend=''): {
    datasource: $.datasource,
    expr: expr,
    legendFormat: legend,
    range: true,
    instant: false,
  },

  // A query of a table: one row per series, at the end of the range.
  tableTarget(expr, legend=''): $.target(expr, legend) {
    range: false,
    instant: true,
    format: 'table',
  },

  // A panel at grid [x, y, w, h], its queries named A, B, C... in order.
  // Set `description` (required), and the hidden `defaults` and `overrides`
  // of its fieldConfig, by adding an object.
  panel(type, id, title, grid, targets): {
    local panel = self,
    defaults:: {},
    overrides:: [],
    id: id,
    type: type,
    title: title,
    description: error 'panel %d %s has no description' % [id, title],
    datasource: $.datasource,
    gridPos: { x: grid[0], y: grid[1], w: grid[2], h: grid[3] },
    targets: [
      targets[i] { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(targets) - 1)
    ],
    fieldConfig: { defaults: panel.defaults, overrides: panel.overrides },
    options: {},
  },

  stat(id, title, grid, targets): $.panel('stat', id, title, grid, targets) {
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      textMode: 'auto',
    },
  },

  timeseries(id, title, grid, targets): $.panel('timeseries', id, title, grid, targets) {
    options: {
      legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  // Set `transformations` too (a table of several queries merges them).
  table(id, title, grid, targets): $.panel('table', id, title, grid, targets) {
    transformations: error 'table %d %s has no transformations' % [id, title],
  },

  stateTimeline(id, title, grid, targets): $.panel('state-timeline', id, title, grid, targets),

  piechart(id, title, grid, targets): $.panel('piechart', id, title, grid, targets),

  // Value mappings of a 0/1 gauge: `zero` and `one` are [text, color].
  mappings(zero, one): [
    {
      type: 'value',
      options: {
        '0': { text: zero[0], color: zero[1] },
        '1': { text: one[0], color: one[1] },
      },
    },
  ],

  // The datasource picker: the Prometheus datasources whose names match
  // `regex`.
  datasourceVariable(regex): {
    name: 'datasource',
    label: 'Prometheus',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    options: [],
    regex: regex,
    skipUrlSync: false,
  },

  // A variable whose values a label_values() query lists; with `all`, it
  // has an "All" entry (regex .*), shown until the user picks when
  // `allByDefault`.
  queryVariable(name, label, query, all=false, allByDefault=false): {
    name: name,
    label: label,
    type: 'query',
    datasource: $.datasource,
    definition: query,
    query: { query: query, refId: name + '-query' },
    refresh: 2,
    sort: 1,
    multi: false,
    includeAll: all,
    current: if allByDefault then { selected: true, text: 'All', value: '$__all' } else {},
    options: [],
    regex: '',
    hide: 0,
    skipUrlSync: false,
  } + (if all then { allValue: '.*' } else {}),

  // Grafana's own annotations (alerts and the ones users add by hand).
  builtInAnnotation: {
    builtIn: 1,
    datasource: { type: 'grafana', uid: '-- Grafana --' },
    enable: true,
    hide: true,
    iconColor: 'rgba(0, 211, 255, 1)',
    name: 'Annotations & Alerts',
    type: 'dashboard',
  },

  // Events drawn on every panel: each series `expr` returns, titled and
  // described by the templates `title` and `text`, tagged by `tagKeys`.
  annotation(name, color, expr, title, text, tagKeys): {
    name: name,
    datasource: $.datasource,
    enable: true,
    iconColor: color,
    expr: expr,
    step: '',
    titleFormat: title,
    textFormat: text,
    useValueForTime: false,
    tagKeys: tagKeys,
  },

  // A dashboard: `d` gives uid, title, description, variables (after the
  // datasource picker), annotations (after Grafana's own) and panels;
  // `config` the mixin's _config (tags, datasources, refresh, time).
  dashboard(config, d): {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: config.dashboardTags,
    timezone: '',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: config.dashboardRefresh,
    time: { from: config.dashboardTimeFrom, to: 'now' },
    annotations: { list: [$.builtInAnnotation] + std.get(d, 'annotations', []) },
    templating: { list: [$.datasourceVariable(config.datasourceRegex)] + d.variables },
    links: [
      {
        type: 'dashboards',
        tags: config.dashboardTags[:1],
        asDropdown: true,
        title: 'IPVS dashboards',
        includeVars: true,
        keepTime: true,
      },
    ],
    panels: d.panels,
  },
}
