{#
    What dbt's generic tests read of the model they test (dbt's get_where_subquery,
    which applies a test's `where` config), with two additions, so that a daily build
    checks what changed, not every row again:

    - a test on a staging model checks only the rows this build brings in, the rows of
      batches newer than its candidate's newest _batch_id (as the incremental candidate
      reads them, macros/latest_version.sql). Staging shows every version raw ever
      received, and raw keeps them all; earlier rows were checked the day they landed.
    - a test on a candidate (audit.<code>) checks the rows of batches newer than the last
      published version and every row that shares a key with one of them, once publish
      has marked the candidate (hub/history.py: `hub-publish v<N> <newest batch>` on its
      _batch_id column). An incremental build changes a candidate only through keys with
      a newer batch, so a duplicate or a NULL can only appear among those rows; a
      candidate made again (a full refresh) carries no mark and is checked whole. What
      this leaves out: a reference from an unchanged row whose parent went away, which
      the gate's reference rules check on every row anyway.

    Without a candidate (the first build, or a full refresh: hub.build drops the
    candidates first) every row is checked.
#}
{% macro default__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get("where", "") -%}
    {%- if where -%}
        {%- do filters.append("(" ~ where ~ ")") -%}
    {%- endif -%}
    {%- set since = staging_tested_since(relation) -%}
    {%- set published = candidate_tested_since(relation) -%}
    {%- if since is not none -%}
        {%- do filters.append("_batch_id > " ~ since) -%}
    {%- elif published is not none -%}
        {%- set newer = "(_batch_id is null or _batch_id > " ~ published.since ~ ")" -%}
        {%- do filters.append(
            "(" ~ newer ~ " or (" ~ published.columns ~ ") in (select " ~ published.columns
            ~ " from " ~ relation ~ " where " ~ newer ~ "))"
        ) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ filters | join(" and ") }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- For a staging model stg_<department>__<code> whose candidate audit.<code> exists: its
    newest _batch_id as a quoted SQL literal ('' when it is empty); otherwise none. -#}
{% macro staging_tested_since(relation) -%}
    {%- set name = relation.identifier or "" -%}
    {%- if not execute or relation.schema != "staging" or not name.startswith("stg_") or "__" not in name -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set candidate = adapter.get_relation(
        database=relation.database, schema="audit", identifier=name.split("__", 1)[1]
    ) -%}
    {%- if candidate is none -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set found = run_query("select max(_batch_id) from " ~ candidate) -%}
    {%- set newest = found.columns[0].values()[0] or "" -%}
    {%- do return("'" ~ (newest | replace("'", "''")) ~ "'") -%}
{%- endmacro %}


{#- For a candidate audit.<code> that publish has marked: its primary key (quoted, comma
    separated) and the newest batch published from it (a quoted SQL literal); otherwise
    none. -#}
{% macro candidate_tested_since(relation) -%}
    {%- set name = relation.identifier or "" -%}
    {%- if not execute or relation.schema != "audit" -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set node = graph.nodes.get("model." ~ project_name ~ "." ~ name) -%}
    {%- set key = (node.config.meta.primary_key if node else none) or [] -%}
    {%- if not key -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- if target.type == "postgres" -%}
        {%- set sql -%}
            select col_description(a.attrelid, a.attnum) from pg_attribute as a
            where a.attrelid = to_regclass('audit.' || quote_ident('{{ name }}'))
              and a.attname = '_batch_id' and not a.attisdropped
        {%- endset -%}
    {%- else -%}
        {%- set sql -%}
            select comment from duckdb_columns()
            where schema_name = 'audit' and table_name = '{{ name }}'
              and column_name = '_batch_id'
        {%- endset -%}
    {%- endif -%}
    {%- set found = run_query(sql) -%}
    {%- set comment = (found.columns[0].values() | first if found.rows else none) or "" -%}
    {%- set parts = comment.split(" ", 2) -%}
    {%- if parts | length != 3 or parts[0] != "hub-publish" or not parts[1].startswith("v") -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set quoted = [] -%}
    {%- for column in key -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- do return({
        "since": "'" ~ (parts[2] | replace("'", "''")) ~ "'",
        "columns": quoted | join(", "),
    }) -%}
{%- endmacro %}
