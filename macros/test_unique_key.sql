{#
    Generic test: no two rows share the same values of `columns` (a composite key).
    Rows with a NULL in the key are left to not_null tests.
#}
{% test unique_key(model, columns) %}
    {%- set quoted = [] -%}
    {%- for column in columns -%}
        {%- do quoted.append(adapter.quote(column)) -%}
    {%- endfor -%}
select {{ quoted | join(', ') }}, count(*) as n_rows
from {{ model }}
where {% for column in quoted %}{{ column }} is not null{% if not loop.last %} and {% endif %}{% endfor %}
group by {{ quoted | join(', ') }}
having count(*) > 1
{% endtest %}
