with

sharing_types as (

    select * from {{ ref('catalog_sharing_types') }}

),

resource_counts as (

    select sharing_type, count(*) as resource_count
    from {{ ref('catalog_resources') }}
    group by sharing_type

),

final as (

    select
        sharing_types.code,
        sharing_types.name_zh,
        sharing_types.description,
        sharing_types.position,
        coalesce(resource_counts.resource_count, 0) as resource_count

    from sharing_types
    left join resource_counts
        on sharing_types.code = resource_counts.sharing_type

)

select * from final
