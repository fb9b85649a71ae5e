{#
    The warehouse schemas are fixed names shared with the gate and publish steps
    (staging, audit, catalog): use a node's custom schema as it is, instead of dbt's
    default "<target schema>_<custom schema>".
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
