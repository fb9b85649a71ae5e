with

providers as (

    select * from {{ ref('catalog_providers') }}

),

resources as (

    select * from {{ ref('catalog_resources') }}

),

resource_counts as (

    select
        provider,
        count(*) as resource_count,
        sum(case when sharing_type = 'unconditional' then 1 else 0 end) as unconditional_count,
        sum(case when sharing_type = 'conditional' then 1 else 0 end) as conditional_count
    from resources
    group by provider

),

final as (

    select
        providers.code,
        providers.name_zh,
        providers.name_en,
        providers.system_kind,
        providers.connection,
        providers.system_description,
        providers.data_officer,
        coalesce(resource_counts.resource_count, 0) as resource_count,
        coalesce(resource_counts.unconditional_count, 0) as unconditional_count,
        coalesce(resource_counts.conditional_count, 0) as conditional_count

    from providers
    left join resource_counts
        on providers.code = resource_counts.provider

)

select * from final
