{#
    Value cleaning used by the staging models, written once for both engines.
#}

{# free text: surrounding spaces dropped, an empty string is a missing value #}
{% macro clean_text(column) -%}
    nullif(trim({{ column }}), '')
{%- endmacro %}

{# GB/T 2261.1 sex code: 1 male, 2 female; the words some systems send are mapped #}
{% macro standard_sex(column) -%}
    case upper(trim({{ column }}))
        when '男' then '1'
        when 'M' then '1'
        when '女' then '2'
        when 'F' then '2'
        else nullif(trim({{ column }}), '')
    end
{%- endmacro %}

{# a month as YYYYMM (social insurance periods); 2026-09 and 2026/09 become 202609 #}
{% macro month_yyyymm(column) -%}
    nullif(replace(replace(trim({{ column }}), '-', ''), '/', ''), '')
{%- endmacro %}

{# a month as YYYY-MM (tax periods); 202609 and 2026/09 become 2026-09 #}
{% macro month_yyyy_mm(column) -%}
    case
        when length(trim({{ column }})) = 6 and trim({{ column }}) not like '%-%'
            then substr(trim({{ column }}), 1, 4) || '-' || substr(trim({{ column }}), 5, 2)
        else nullif(replace(trim({{ column }}), '/', '-'), '')
    end
{%- endmacro %}

{#
    The warehouse type of a catalog field type (string, integer, boolean, date,
    timestamp, decimal(p,s)), the same names hub.storage uses for raw tables.
#}
{% macro catalog_type(field_type) -%}
    {{ return(adapter.dispatch('catalog_type')(field_type)) }}
{%- endmacro %}

{% macro default__catalog_type(field_type) -%}
    {%- set types = {
        'string': 'varchar', 'integer': 'bigint', 'boolean': 'boolean',
        'date': 'date', 'timestamp': 'timestamp'} -%}
    {%- if field_type.startswith('decimal(') -%}
        {{ field_type }}
    {%- else -%}
        {{ types[field_type] }}
    {%- endif -%}
{%- endmacro %}

{% macro postgres__catalog_type(field_type) -%}
    {%- set types = {
        'string': 'text', 'integer': 'bigint', 'boolean': 'boolean',
        'date': 'date', 'timestamp': 'timestamp'} -%}
    {%- if field_type.startswith('decimal(') -%}
        numeric{{ field_type[7:] }}
    {%- else -%}
        {{ types[field_type] }}
    {%- endif -%}
{%- endmacro %}

{# the current time in UTC without a zone, like _extracted_at and the ops timestamps #}
{% macro utc_now() -%}
    {{ return(adapter.dispatch('utc_now')()) }}
{%- endmacro %}

{% macro default__utc_now() -%}
    cast(timezone('UTC', current_timestamp) as timestamp)
{%- endmacro %}

{#
    certificate and proof numbers such as 赣(2025)景德镇市不动产权第0012345号: no spaces,
    full-width parentheses made ASCII, so the same certificate is one value everywhere
#}
{% macro clean_certificate_no(column) -%}
    nullif(replace(replace(replace(trim({{ column }}), ' ', ''), '（', '('), '）', ')'), '')
{%- endmacro %}
