{#
    What dbt's generic tests read of the model they test (dbt's get_where_subquery,
    which applies a test's `where` config), with one addition: a test on a staging model
    checks only the rows this build brings in, the rows of batches newer than its
    candidate's newest _batch_id (as the incremental candidate reads them,
    macros/latest_version.sql). Staging shows every version raw ever received, and raw
    keeps them all: checking every row again would cost more every day, though earlier
    rows were checked the day they landed. Without a candidate (the first build, or a
    full refresh: hub.build drops the candidates first) every row is checked.
#}
{% macro default__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get("where", "") -%}
    {%- if where -%}
        {%- do filters.append("(" ~ where ~ ")") -%}
    {%- endif -%}
    {%- set since = staging_tested_since(relation) -%}
    {%- if since is not none -%}
        {%- do filters.append("_batch_id > " ~ since) -%}
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
