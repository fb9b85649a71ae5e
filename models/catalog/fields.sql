with

fields as (

    select * from {{ ref('catalog_fields') }}

),

resources as (

    select * from {{ ref('catalog_resources') }}

),

final as (

    select
        fields.resource,
        fields.position,
        fields.name,
        fields.name_zh,
        fields.type,
        fields.description,
        fields.sensitivity,
        fields.nullable,
        fields.is_primary_key,
        fields.is_cursor,
        fields.source_column,
        resources.name_en as resource_name_en,
        resources.provider

    from fields
    inner join resources
        on fields.resource = resources.code

)

select * from final
