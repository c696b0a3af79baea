// dashboards/*.json: the mixin's dashboards, for `jsonnet -m DIR`, which
// writes each field to a file of its name as jsonnet writes JSON (as any
// mixin's dashboards are rendered). mixin/generate runs it with the mixin
// as the top-level argument.
function(mixin) mixin.grafanaDashboards
