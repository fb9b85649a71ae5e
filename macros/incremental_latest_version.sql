{#
    The incremental strategy of the shared candidates (dbt_project.yml: models/shared/
    are incremental with incremental_strategy latest_version).

    The model's incremental run (macros/latest_version.sql) gives one row per changed
    key: its latest version, with _tombstone = true when that is a delete. This deletes
    every changed key from the candidate, then inserts the live ones: the candidate then
    holds what a full rebuild would, having read and written only the changed keys.

    A candidate whose columns differ from the model's (a field added to the catalog)
    stops the build with the command that rebuilds it: hub build --full-refresh.
#}
{% macro get_incremental_latest_version_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set temp = arg_dict["temp_relation"] -%}
    {%- set unique_key = arg_dict["unique_key"] -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set target_columns = adapter.get_columns_in_relation(target) | map(attribute="name") | map("lower") | list -%}
    {%- set model_columns = adapter.get_columns_in_relation(temp) | map(attribute="name") | map("lower") | reject("equalto", "_tombstone") | list -%}
    {%- if target_columns | sort != model_columns | sort -%}
        {{ exceptions.raise_compiler_error(
            "candidate " ~ target ~ " has columns " ~ (target_columns | sort | join(", "))
            ~ " but the model now gives " ~ (model_columns | sort | join(", "))
            ~ ": rebuild it with `hub build --full-refresh`"
        ) }}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for name in target_columns -%}
        {%- do columns.append(adapter.quote(name)) -%}
    {%- endfor %}
delete from {{ target }} as candidate
where exists (
    select 1 from {{ temp }} as changed
    where
        {%- for column in keys %}
        {{ latest_version_key_text('changed.' ~ adapter.quote(column)) }} = {{ latest_version_key_text('candidate.' ~ adapter.quote(column)) }}{{ " and" if not loop.last }}
        {%- endfor %}
);

insert into {{ target }} ({{ columns | join(", ") }})
select {{ columns | join(", ") }}
from {{ temp }}
where not _tombstone
{% endmacro %}
