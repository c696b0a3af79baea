// YAML as Prometheus rule files are written by hand: keys in the order
// of `order` (then the rest sorted), plain scalars where YAML reads them
// back as the same string, block scalars (|) for multi-line strings, and
// double quotes for the rest. std.manifestYamlDoc writes valid YAML too,
// but sorts the keys (annotations before expr) and quotes every string.
// Only native string functions (strReplace) touch long strings:
// jsonnet 0.18's std.escapeStringJson and std.findSubstr go one character
// at a time.
local order = [
  'name',
  'interval',
  'rules',
  'alert',
  'record',
  'expr',
  'for',
  'keep_firing_for',
  'labels',
  'annotations',
  'summary',
  'description',
  'runbook_url',
];

// std.all is newer than Debian's jsonnet (0.18).
local all(bools) = std.foldl(function(a, b) a && b, bools, true);

local letters = std.set(std.stringChars('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'));
local digits = std.set(std.stringChars('0123456789'));
local units = std.set(std.stringChars('smhdwy'));
local plainChars = std.set(letters + digits + ['_', '-']);
// Words YAML 1.1 reads as booleans or null.
local special = std.set(['y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 'null']);

// A letter, then letters, digits, _ and -, and not a YAML word; or a
// Prometheus duration of one unit (2m, 15s).
local isPlain(s) =
  local chars = std.stringChars(s);
  local n = std.length(s);
  n > 0 && n <= 64 && (
    (std.setMember(chars[0], letters)
     && all([std.setMember(c, plainChars) for c in chars])
     && !std.setMember(std.asciiLower(s), special))
    || (n >= 2
        && all([std.setMember(c, digits) for c in chars[:n - 1]])
        && std.setMember(chars[n - 1], units))
  );

local quote(s) = '"' + std.strReplace(std.strReplace(s, '\\', '\\\\'), '"', '\\"') + '"';

local scalar(v) =
  if std.isString(v) then (if isPlain(v) then v else quote(v))
  else if v == null then 'null'
  else std.toString(v);

local isMultiline(v) = std.isString(v) && std.strReplace(v, '\n', '') != v;
local isEmpty(v) = (std.isObject(v) || std.isArray(v)) && std.length(v) == 0;
local isNested(v) = (std.isObject(v) || std.isArray(v)) && std.length(v) > 0;

// A block scalar's header and lines at `indent` (| keeps one final
// newline, |- none; an indentation indicator when the text starts with a
// space, which YAML would otherwise take for the indentation).
local block(s, indent) =
  local body = if std.endsWith(s, '\n') then std.substr(s, 0, std.length(s) - 1) else s;
  local header = '|' + (if std.startsWith(s, ' ') then '2' else '') + (if std.endsWith(s, '\n') then '' else '-');
  [header] + [if line == '' then '' else indent + line for line in std.split(body, '\n')];

local keys(o) =
  local fields = std.objectFields(o);
  [k for k in order if std.objectHas(o, k)] + [k for k in fields if !std.member(order, k)];

local lines(v, indent) =
  if std.isObject(v) then
    std.flattenArrays([
      local value = v[k];
      local key = indent + scalar(k) + ':';
      if isMultiline(value) then
        local b = block(value, indent + '  ');
        [key + ' ' + b[0]] + b[1:]
      else if isNested(value) then [key] + lines(value, indent + '  ')
      else if isEmpty(value) then [key + (if std.isObject(value) then ' {}' else ' []')]
      else [key + ' ' + scalar(value)]
      for k in keys(v)
    ])
  else
    std.flattenArrays([
      if isMultiline(item) then
        local b = block(item, indent + '  ');
        [indent + '- ' + b[0]] + b[1:]
      else if isNested(item) then
        // The item's first line at indent + 2, with "- " in its indentation.
        local inner = lines(item, indent + '  ');
        [indent + '- ' + std.substr(inner[0], std.length(indent) + 2, std.length(inner[0]))] + inner[1:]
      else [indent + '- ' + (if isEmpty(item) then (if std.isObject(item) then '{}' else '[]') else scalar(item))]
      for item in v
    ]);

{
  // `value` (an object or a list) as a YAML document, without the final
  // newline (which `jsonnet -S` writes).
  manifest(value): std.join('\n', lines(value, '')),
}
